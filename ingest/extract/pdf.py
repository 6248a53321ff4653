"""PDF with pdfplumber: text per page, tables as Markdown, document metadata.

Runs inside the extraction sandbox (see ``sandbox.py``): pdfminer follows whatever
object graph a file declares, and hostile files (xref loops, 22,000-deep arrays) are
stopped by the sandbox's time and memory limits, not here.

A file pdfminer cannot read (no xref table, trailer or startxref; a truncated tail) gets
a second pass in the same sandbox: qpdf (pikepdf) repairs it in memory, the repaired
bytes go through the same pdfplumber code, and the document says it was repaired.
Healthy files never reach that pass.

When qpdf cannot repair it either because the catalog and page tree are gone (a file
cut in half), the page objects that survive are salvaged: a new page tree over them,
in file order, is appended and qpdf rebuilds the cross-reference table around it.
"""

from __future__ import annotations

import dataclasses
import io
from typing import TYPE_CHECKING, Any

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect
from pdfminer.pdfparser import PDFSyntaxError
from pdfplumber.utils.exceptions import PdfminerException

from ingest.extract import detect
from ingest.extract.tables import markdown_table
from ingest.extract.text import paragraph_sections
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError, LimitExceededError

if TYPE_CHECKING:
    from ingest.extract.pdf_repair import Salvage

_METADATA_KEYS = {"Title": "title", "Author": "author", "Subject": "subject",
                  "CreationDate": "created", "ModDate": "modified", "Producer": "producer"}
#: The wording of the "no text on page(s)" warning for a file read as it is.
_NO_TEXT_LAYER = "scanned? OCR is not run"


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

    def _extract(self, data: bytes, source_uri: str, password: str | None, *, skip_bad_pages: bool = False,
                 no_text_reason: str = _NO_TEXT_LAYER) -> ExtractedDocument:
        with pdfplumber.open(io.BytesIO(data), password=password or "") as pdf:
            return self._extract_open(pdf, source_uri, skip_bad_pages, no_text_reason)

    def _extract_repaired(self, data: bytes, source_uri: str, password: str | None, problem: str) -> ExtractedDocument:
        """Extract qpdf's repair of a file pdfminer could not read, keeping every page that can be read.

        A page whose content is cut off or undecodable is skipped with a warning instead of
        failing the file: after damage, partial text is the best there is. With no text at
        all, the file is reported as damaged beyond recovery.
        """
        # Imported here: only damaged files need qpdf, and every sandboxed child would
        # otherwise pay for importing it.
        from ingest.extract import pdf_repair

        try:
            repaired, damage = pdf_repair.repair(data, password, problem)
        except pdf_repair.PasswordRequired as exc:
            raise _password_error(source_uri, password) from exc
        except pdf_repair.QpdfFailed as failed:
            return self._extract_salvaged(data, source_uri, problem, str(failed))
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

    def _extract_salvaged(self, data: bytes, source_uri: str, problem: str, qpdf_error: str) -> ExtractedDocument:
        """Extract the pages that survive in a file whose catalog and page tree qpdf could not find.

        The text of every page that yields any is kept; the warning says which pages
        yield none. With no readable page object, or no text from any, the file is
        reported as damaged beyond recovery.
        """
        from ingest.extract import pdf_repair

        unrepaired = f"qpdf could not repair it: {qpdf_error}"
        try:
            salvage = pdf_repair.salvage(data, self.max_pages, source_uri)
        except pdf_repair.QpdfFailed as failed:
            raise _beyond_recovery(source_uri, problem, f"{unrepaired}; rebuilding a page tree from the page "
                                                        f"objects that survive failed too: {failed}") from failed
        if salvage is None:
            raise _beyond_recovery(source_uri, problem, f"{unrepaired}; no readable page object survives to rebuild "
                                                        "a page tree from")
        survivors = f"the {salvage.pages} page object(s) that survive"
        try:
            doc = self._extract(salvage.data, source_uri, None, skip_bad_pages=True,
                                no_text_reason="content or fonts lost with the damaged part")
        except PdfminerException as exc:
            raise _beyond_recovery(source_uri, problem, f"{unrepaired}; {survivors} are unreadable: "
                                                        f"{_describe(_unwrap(exc))}") from exc
        if not doc.text:
            raise _beyond_recovery(source_uri, problem, f"{unrepaired}; no text was recovered from {survivors}")
        with_text = sorted({s.page for s in doc.sections if s.page is not None})
        note = _salvage_note(source_uri, qpdf_error, salvage, with_text)
        return dataclasses.replace(doc, warnings=(note, *doc.warnings))

    def _extract_open(self, pdf: Any, source_uri: str, skip_bad_pages: bool,
                      no_text_reason: str = _NO_TEXT_LAYER) -> ExtractedDocument:
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
            _page_warnings(source_uri, page_count, bad_pages, empty_pages, no_text_reason),
        )


def _page_warnings(source_uri: str, page_count: int, bad_pages: list[tuple[int, BaseException]],
                   empty_pages: list[int], no_text_reason: str) -> tuple[str, ...]:
    notes = []
    if bad_pages:
        first_number, first_error = bad_pages[0]
        notes.append(f"{source_uri}: page(s) {_ranges([n for n, _ in bad_pages])} of {page_count} could not "
                     f"be read and were skipped (page {first_number}: {_describe(first_error)})")
    if empty_pages:
        notes.append(f"{source_uri}: no text layer on page(s) {_ranges(empty_pages)} of {page_count} "
                     f"({no_text_reason})")
    return tuple(notes)


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
    return bool(x0 <= cx <= x1 and top <= cy <= bottom)


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


def _salvage_note(source_uri: str, qpdf_error: str, salvage: Salvage, with_text: list[int]) -> str:
    """The warning that says what was lost, what was rebuilt and how far to trust it."""
    silent = [n for n in range(1, salvage.pages + 1) if n not in with_text]
    parts = [f"{source_uri}: damaged PDF: no readable catalog or page tree ({qpdf_error})",
             f"rebuilt from the {salvage.pages} page object(s) that survive, numbered in file order "
             f"(the original page numbers are unknown); text recovered from {len(with_text)} of them"
             + (f", none from page(s) {_ranges(silent)}" if silent else "")]
    if salvage.lost_fonts:
        parts.append(f"fonts lost on page(s) {_ranges(list(salvage.lost_fonts))}: Times-Roman widths stand in, "
                     "so word spacing and symbols may be wrong")
    if salvage.boxless:
        parts.append(f"page size lost on page(s) {_ranges(list(salvage.boxless))}: {salvage.box_from} assumed")
    return "; ".join([*parts, "text may be incomplete"])


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
