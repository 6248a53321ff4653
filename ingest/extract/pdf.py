"""PDF with pdfplumber: text per page, tables as Markdown, document metadata.

Runs inside the extraction sandbox (see ``sandbox.py``): pdfminer follows whatever
object graph a file declares, and hostile files (xref loops, 22,000-deep arrays) are
stopped by the sandbox's time and memory limits, not here.

A file pdfminer cannot read (no xref table, trailer or startxref; a truncated tail) gets
a second pass in the same sandbox: qpdf (pikepdf) repairs it in memory, the repaired
bytes go through the same pdfplumber code, and the document says it was repaired.
Healthy files never reach that pass.
"""

from __future__ import annotations

import dataclasses
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
#: qpdf's warnings that say only that it is repairing, not what is wrong.
_QPDF_GENERIC_WARNINGS = {"file is damaged", "Attempting to reconstruct cross-reference table"}


class PdfExtractor:
    media_types = frozenset({detect.PDF})

    def __init__(self, max_pages: int = 2000) -> None:
        self.max_pages = max_pages

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        """Extract as is; only if pdfminer fails (not for a password) try again on qpdf's repair.

        Repairing first would cost every healthy file a qpdf parse and rewrite.
        """
        try:
            return self._extract(data, source_uri, password)
        except (PdfminerException, PDFPasswordIncorrect, PDFSyntaxError) as exc:
            cause = _unwrap(exc)
            if _is_password_error(cause):
                raise _password_error(source_uri, password) from exc
            if isinstance(cause, MemoryError):
                raise cause from None  # the sandbox reports the memory limit; a repair would only retry it
        return self._extract_repaired(data, source_uri, password, _describe(cause))

    def _extract(self, data: bytes, source_uri: str, password: str | None, *,
                 skip_bad_pages: bool = False) -> ExtractedDocument:
        with pdfplumber.open(io.BytesIO(data), password=password or "") as pdf:
            return self._extract_open(pdf, source_uri, skip_bad_pages)

    def _extract_repaired(self, data: bytes, source_uri: str, password: str | None, problem: str) -> ExtractedDocument:
        """Extract qpdf's repair of a file pdfminer could not read, keeping every page that can be read.

        A page whose content is cut off or undecodable is skipped with a warning instead of
        failing the file: after damage, partial text is the best there is. With no text at
        all, the file is reported as damaged beyond recovery.
        """
        repaired, damage = _repair(data, source_uri, password, problem)
        try:
            # qpdf's save drops any encryption, so the repaired bytes need no password.
            doc = self._extract(repaired, source_uri, None, skip_bad_pages=True)
        except PdfminerException as exc:
            raise _beyond_recovery(source_uri, problem, f"still unreadable after qpdf's repair: "
                                                        f"{_describe(_unwrap(exc))}") from exc
        if not doc.text:
            raise _beyond_recovery(source_uri, problem, f"qpdf repaired it but no text was recovered "
                                                        f"from its {doc.metadata['pages']} page(s)")
        note = f"{source_uri}: damaged PDF: {damage}; repaired before extraction, text may be incomplete"
        return dataclasses.replace(doc, warnings=(note, *doc.warnings))

    def _extract_open(self, pdf: Any, source_uri: str, skip_bad_pages: bool) -> ExtractedDocument:
        page_count = len(pdf.pages)
        if page_count > self.max_pages:
            raise LimitExceededError(source_uri, f"{page_count} pages exceeds the limit of {self.max_pages}")
        parts: list[str] = []
        sections: list[Section] = []
        empty_pages: list[int] = []
        bad_pages: list[tuple[int, BaseException]] = []
        pos = 0
        for number, page in enumerate(pdf.pages, start=1):
            try:
                blocks = _page_blocks(page)
            except Exception as exc:  # noqa: BLE001 - after a repair, one unreadable page must not lose the rest
                if not skip_bad_pages or isinstance(_unwrap(exc), MemoryError):  # memory: the sandbox's limit
                    raise
                bad_pages.append((number, _unwrap(exc)))
                continue
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
        return ExtractedDocument(
            source_uri, detect.PDF, "".join(parts), tuple(sections),
            {"pages": page_count, **_metadata(pdf.metadata)},
            _page_warnings(source_uri, page_count, bad_pages, empty_pages),
        )


def _page_warnings(source_uri: str, page_count: int, bad_pages: list[tuple[int, BaseException]],
                   empty_pages: list[int]) -> tuple[str, ...]:
    warnings = []
    if bad_pages:
        first_number, first_error = bad_pages[0]
        warnings.append(f"{source_uri}: page(s) {_ranges([n for n, _ in bad_pages])} of {page_count} could not "
                        f"be read and were skipped (page {first_number}: {_describe(first_error)})")
    if empty_pages:
        warnings.append(f"{source_uri}: no text layer on page(s) {_ranges(empty_pages)} of {page_count} "
                        "(scanned? OCR is not run)")
    return tuple(warnings)


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


def _repair(data: bytes, source_uri: str, password: str | None, problem: str) -> tuple[bytes, str]:
    """qpdf's in-memory repair of a damaged file, and the first thing qpdf found wrong (else ``problem``).

    qpdf rebuilds the cross-reference table by scanning the file for objects and (from
    qpdf 12) finds the catalog when the trailer is gone too; pdfminer's own fallback scan
    gives up at an object cut off by truncation. Streams are copied as they are (no decoding, no recompression):
    pdfminer decodes them anyway, and a cut-off stream stays readable up to the cut.
    pikepdf is imported here rather than at the top because only damaged files need it
    and each sandboxed child would otherwise pay for the import.
    """
    import pikepdf

    stream = io.BytesIO(data)
    try:
        with pikepdf.open(stream, password=password or "") as pdf:
            out = io.BytesIO()
            pdf.save(out, fix_metadata_version=False, compress_streams=False,
                     stream_decode_level=pikepdf.StreamDecodeLevel.none)
            found = [_qpdf_message(w, stream) for w in pdf.get_warnings()]
    except pikepdf.PasswordError as exc:
        raise _password_error(source_uri, password) from exc
    except pikepdf.PdfError as exc:
        reason = f"qpdf could not repair it: {_qpdf_message(str(exc), stream)}"
        raise _beyond_recovery(source_uri, problem, reason) from exc
    specific = [w for w in found if w not in _QPDF_GENERIC_WARNINGS]
    return out.getvalue(), specific[0] if specific else problem


def _qpdf_message(message: str, stream: io.BytesIO) -> str:
    """qpdf's message without pikepdf's name for the stream (``stream <_io.BytesIO object at 0x...>``)."""
    return message.removeprefix(f"stream {stream}").lstrip(": ")


def _unwrap(exc: Exception) -> BaseException:
    """pdfplumber wraps pdfminer's errors; the wrapped one names the problem."""
    inner = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else None
    return inner if isinstance(inner, BaseException) else exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _is_password_error(exc: BaseException) -> bool:
    return isinstance(exc, PDFPasswordIncorrect) or "password" in type(exc).__name__.lower()


def _password_error(source_uri: str, password: str | None) -> ExtractionError:
    if password:
        return ExtractionError(source_uri, "encrypted PDF: the supplied password is wrong")
    return ExtractionError(source_uri, "encrypted PDF: a password is required (supply one per file)")


def _beyond_recovery(source_uri: str, problem: str, detail: str) -> ExtractionError:
    return ExtractionError(source_uri, f"damaged PDF, beyond recovery: {problem}; {detail}")
