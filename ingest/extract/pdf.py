"""PDF with pdfplumber: text per page, tables as Markdown, document metadata.

Runs inside the extraction sandbox (see ``sandbox.py``): pdfminer follows whatever
object graph a file declares, and hostile files (xref loops, 22,000-deep arrays) are
stopped by the sandbox's time and memory limits, not here.
"""

from __future__ import annotations

import io
from typing import Any

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect
from pdfminer.pdfparser import PDFSyntaxError
from pdfplumber.utils.exceptions import PdfminerException

from ingest.extract import detect
from ingest.extract.tables import markdown_table
from ingest.extract.text import paragraph_sections
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError, LimitExceededError

_METADATA_KEYS = {"Title": "title", "Author": "author", "Subject": "subject",
                  "CreationDate": "created", "ModDate": "modified", "Producer": "producer"}


class PdfExtractor:
    media_types = frozenset({detect.PDF})

    def __init__(self, max_pages: int = 2000) -> None:
        self.max_pages = max_pages

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        try:
            pdf = pdfplumber.open(io.BytesIO(data), password=password or "")
        except PdfminerException as exc:
            raise _translate(source_uri, exc.args[0] if exc.args else exc, password) from exc
        except (PDFPasswordIncorrect, PDFSyntaxError) as exc:
            raise _translate(source_uri, exc, password) from exc
        with pdf:
            try:
                return self._extract_open(pdf, source_uri)
            except PdfminerException as exc:
                raise _translate(source_uri, exc.args[0] if exc.args else exc, password) from exc

    def _extract_open(self, pdf: Any, source_uri: str) -> ExtractedDocument:
        page_count = len(pdf.pages)
        if page_count > self.max_pages:
            raise LimitExceededError(source_uri, f"{page_count} pages exceeds the limit of {self.max_pages}")
        parts: list[str] = []
        sections: list[Section] = []
        empty_pages: list[int] = []
        pos = 0
        for number, page in enumerate(pdf.pages, start=1):
            blocks = _page_blocks(page)
            if not blocks:
                empty_pages.append(number)
            for kind, text in blocks:
                if parts:
                    parts.append("\n\n")
                    pos += 2
                parts.append(text)
                if kind == "table":
                    sections.append(Section(pos, pos + len(text), "table", number))
                else:
                    sections.extend(
                        Section(s.start + pos, s.end + pos, s.kind, number)
                        for s in paragraph_sections(text, 0, len(text))
                    )
                pos += len(text)
        text = "".join(parts)
        warnings = []
        if empty_pages:
            warnings.append(f"{source_uri}: no text layer on page(s) {_ranges(empty_pages)} of {page_count} "
                            "(scanned? OCR is not run)")
        return ExtractedDocument(
            source_uri, detect.PDF, text, tuple(sections),
            {"pages": page_count, **_metadata(pdf.metadata)}, tuple(warnings),
        )


def _page_blocks(page: Any) -> list[tuple[str, str]]:
    """The page's running text and its tables, tables rendered as Markdown."""
    # Ruled tables need drawn edges: skip the (slow) table finder on pages without any.
    tables = page.find_tables() if (page.rects or page.lines) else []
    blocks: list[tuple[str, str]] = []
    body = page
    if tables:
        bboxes = [t.bbox for t in tables]
        body = page.filter(lambda obj: not any(_inside(obj, b) for b in bboxes))
    text = (body.extract_text() or "").strip()
    if text:
        blocks.append(("text", text))
    for table in tables:
        rendered = markdown_table(table.extract())
        if rendered:
            blocks.append(("table", rendered))
    return blocks


def _inside(obj: dict[str, Any], bbox: tuple[float, float, float, float]) -> bool:
    if "x0" not in obj or "top" not in obj:
        return False
    x0, top, x1, bottom = bbox
    cx = (obj["x0"] + obj["x1"]) / 2
    cy = (obj["top"] + obj["bottom"]) / 2
    return x0 <= cx <= x1 and top <= cy <= bottom


def _metadata(raw: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, name in _METADATA_KEYS.items():
        value = raw.get(key)
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        if value:
            out[name] = str(value)
    return out


def _ranges(numbers: list[int]) -> str:
    spans: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [0]:
        if n != prev + 1:
            spans.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = n
        prev = n
    return ", ".join(spans)


def _translate(source_uri: str, exc: object, password: str | None) -> ExtractionError:
    if isinstance(exc, PDFPasswordIncorrect) or "password" in type(exc).__name__.lower():
        if password:
            return ExtractionError(source_uri, "encrypted PDF: the supplied password is wrong")
        return ExtractionError(source_uri, "encrypted PDF: a password is required (supply one per file)")
    return ExtractionError(source_uri, f"damaged or unreadable PDF: {type(exc).__name__}: {exc}")
