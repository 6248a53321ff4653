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
import itertools
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect
from pdfminer.pdfparser import PDFSyntaxError
from pdfplumber.utils.exceptions import PdfminerException

from ingest.extract import detect, ocr, pdfium_text
from ingest.extract.layout import Line, OutlineEntry, heading_levels, outline_lines, running_lines
from ingest.extract.tables import markdown_table
from ingest.extract.text import paragraph_sections
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError, LimitExceededError

if TYPE_CHECKING:
    from ingest.extract.pdf_repair import Salvage

_METADATA_KEYS = {"Title": "title", "Author": "author", "Subject": "subject",
                  "CreationDate": "created", "ModDate": "modified", "Producer": "producer"}
#: The wording of the "no text on page(s)" warning for a file read as it is.
_NO_TEXT_LAYER = "nothing drawn"
#: pdfplumber splits words at gaps wider than this share of a character's size.
_X_TOLERANCE_RATIO = 0.15
#: A page whose glyphs are at least this share unmapped by both engines has no usable text
#: layer (CID fonts without a ToUnicode map: on the TAMReview paper 80% of the glyphs, and
#: its 195,000 tokens of "(cid:N)" were a fifth of the reference corpus's chunks); OCR reads
#: it instead. Below it, the unmapped glyphs are dropped (a few symbols of a form or a map).
_UNREADABLE_SHARE = 0.3


class PdfExtractor:
    media_types = frozenset({detect.PDF})

    def __init__(self, max_pages: int = 2000, ocr_config: ocr.OcrConfig | None = None) -> None:
        self.max_pages = max_pages
        #: image-only pages are OCR'd when Tesseract is installed (None: the defaults)
        self.ocr = ocr_config if ocr_config is not None else ocr.OcrConfig()

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
            return self._extract_open(pdf, data, password, source_uri, skip_bad_pages, no_text_reason)

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

    def _extract_open(self, pdf: Any, data: bytes, password: str | None, source_uri: str, skip_bad_pages: bool,
                      no_text_reason: str = _NO_TEXT_LAYER) -> ExtractedDocument:
        started = time.monotonic()
        page_count = len(pdf.pages)
        if page_count > self.max_pages:
            raise LimitExceededError(source_uri, f"{page_count} pages exceeds the limit of {self.max_pages}")
        doc = _open_pdfium(data, password, page_count)
        try:
            pages: list[_Page] = []
            bad_pages: list[tuple[int, BaseException]] = []
            for number, page in enumerate(pdf.pages, start=1):
                try:
                    pages.append(_read_page(page, doc, number))
                except Exception as exc:  # noqa: BLE001 - after a repair, one unreadable page must not lose the rest
                    if not skip_bad_pages or isinstance(_unwrap(exc), MemoryError):  # memory: the sandbox's limit
                        raise
                    bad_pages.append((number, _unwrap(exc)))
                finally:
                    page.close()  # its parsed objects: memory stays per page, not per document
            outline = _outline(doc)
            ocr_notes = self._ocr(pages, doc, started)
        finally:
            if doc is not None:
                doc.close()
        return _assemble(source_uri, pdf.metadata, page_count, pages, outline, bad_pages, ocr_notes, no_text_reason)

    def _ocr(self, pages: list[_Page], doc: Any, started: float) -> dict[str, list[int]]:
        """OCR the pages that draw something but have no text, within the page and time budgets.

        Returns why the pages that stay empty are empty: ``{reason: [page numbers]}``.
        """
        blank = [p for p in pages if not p.lines and not p.tables and p.draws]
        if not blank:
            return {}
        cfg = self.ocr
        if cfg is None or not cfg.enabled:
            return {"OCR is off": [p.number for p in blank]}
        if doc is None:
            return {"PDFium cannot render the file for OCR": [p.number for p in blank]}
        try:
            tesseract = ocr.available(cfg)
        except ocr.OcrUnavailable as exc:
            return {f"no OCR: {exc}": [p.number for p in blank]}
        reasons: dict[str, list[int]] = {}
        for done, page in enumerate(blank):
            if done >= cfg.max_pages:
                reasons.setdefault(f"beyond the OCR budget of {cfg.max_pages} page(s)", []).append(page.number)
                continue
            if cfg.time_budget_s is not None and time.monotonic() - started > cfg.time_budget_s:
                reasons.setdefault(f"OCR stopped after {cfg.time_budget_s:g} s of the extraction time limit",
                                   []).append(page.number)
                continue
            try:
                text = ocr.recognize(pdfium_text.render_png(doc, page.number - 1, cfg.dpi), cfg, tesseract,
                                     upright=page.garbled)
            except ocr.OcrUnavailable as exc:
                reasons.setdefault(f"OCR failed: {exc}", []).append(page.number)
                continue
            page.lines = [Line(line.rstrip()) for line in _ocr_lines(text)]
            page.ocr = True
            if not page.lines:
                reasons.setdefault("OCR found no text", []).append(page.number)
        return reasons


@dataclass
class _Page:
    number: int
    lines: list[Line]
    tables: list[str] = field(default_factory=list)
    draws: bool = True
    ocr: bool = False
    #: glyphs pdfminer found no character for (left out of the text)
    unmapped: int = 0
    #: so many of its glyphs are unmapped that the page has no usable text layer
    garbled: bool = False


def _open_pdfium(data: bytes, password: str | None, page_count: int) -> Any:
    """PDFium's view of the same bytes, or None if it cannot open them or sees other pages
    (a damaged file both parsers read differently: pdfplumber alone then reads it)."""
    try:
        doc = pdfium_text.open_document(data, password)
    except pdfium_text.PdfiumError:
        return None
    if len(doc) != page_count:
        doc.close()
        return None
    return doc


def _outline(doc: Any) -> list[OutlineEntry]:
    if doc is None:
        return []
    try:
        return pdfium_text.outline(doc)
    except pdfium_text.PdfiumError:
        return []


def _read_page(page: Any, doc: Any, number: int) -> _Page:
    """One page's lines and tables: PDFium's text, unless it cannot read the page; pdfplumber's
    table finder on pages whose paths may rule a table, and its text around the tables it finds.

    A page that pdfminer too reads mostly as glyphs without a Unicode mapping (``(cid:N)``)
    has no usable text layer: it comes back empty and ``garbled``, to be OCR'd like a scan;
    elsewhere such glyphs are dropped, never indexed as ``(cid:N)``."""
    seen = pdfium_text.read_page(doc, number - 1) if doc is not None else None
    if seen is not None and not seen.ruled and seen.fallback is None:
        return _Page(number, list(seen.lines), draws=seen.draws)
    unmapped = 0
    if seen is None or seen.fallback is not None:
        glyphs = [c for c in page.chars if not c["text"].isspace()]
        unmapped = sum(_unmapped_glyph(c) for c in glyphs)
        if unmapped and unmapped >= _UNREADABLE_SHARE * len(glyphs):
            return _Page(number, [], unmapped=unmapped, garbled=True)
    page = page.filter(lambda obj: not _unmapped_glyph(obj))
    # Ruled tables need drawn edges: skip the (slow) table finder on pages without any.
    ruled = seen.ruled if seen is not None else bool(page.rects or page.lines)
    tables = page.find_tables() if ruled else []
    if seen is not None and not tables and seen.fallback is None:
        return _Page(number, list(seen.lines), draws=seen.draws)
    body = page
    if tables:
        bboxes = [t.bbox for t in tables]
        body = page.filter(lambda obj: not any(_inside(obj, b) for b in bboxes))
    if seen is not None and seen.fallback is not None:
        body = body.dedupe_chars()  # pdfminer keeps the doubled glyphs of fake bold
    rendered = [markdown_table(table.extract(x_tolerance_ratio=_X_TOLERANCE_RATIO)) for table in tables]
    draws = seen.draws if seen is not None else bool(page.objects)
    return _Page(number, _plumber_lines(body), [t for t in rendered if t], draws=draws, unmapped=unmapped)


def _unmapped_glyph(obj: dict[str, Any]) -> bool:
    """pdfminer's stand-in for a glyph its font maps to no character."""
    return obj.get("object_type") == "char" and str(obj.get("text", "")).startswith("(cid:")


def _plumber_lines(page: Any) -> list[Line]:
    """pdfplumber's lines, words split at gaps wider than 15% of a character's size (its
    default, a fixed 3 pt, glues words set in small type or tight spacing)."""
    lines = []
    for found in page.extract_text_lines(x_tolerance_ratio=_X_TOLERANCE_RATIO, return_chars=True):
        chars = [c for c in found["chars"] if not c["text"].isspace()]
        sizes = Counter(round(float(c["size"]), 1) for c in chars)
        bold = sum("bold" in str(c.get("fontname", "")).lower() for c in chars)
        size = sizes.most_common(1)[0][0] if sizes else 0.0
        lines.append(Line(found["text"], round(float(found["top"]), 1), size, 2 * bold > len(chars)))
    return lines


def _blocks(lines: list[Line], headings: dict[int, tuple[int, str | None]],
            step: float | None) -> list[tuple[str, str, int, str | None]]:
    """A page's lines as ("heading", text, level, title) and ("paragraph", text, 0, None)
    blocks: a run of heading lines of one level is one heading (a wrapped title) unless
    the outline names each; body lines are joined by line breaks, with a blank line where
    the vertical gap says a new paragraph starts."""
    blocks: list[tuple[str, str, int, str | None]] = []
    body: list[Line] = []

    def flush() -> None:
        if body:
            blocks.append(("paragraph", _paragraphs(body, step), 0, None))
            body.clear()

    for i, line in enumerate(lines):
        found = headings.get(i)
        if found is None:
            body.append(line)
            continue
        flush()
        level, title = found
        text = line.text.strip()
        previous = headings.get(i - 1)
        if blocks and blocks[-1][0] == "heading" and title is None and previous is not None and previous[0] == level:
            blocks[-1] = ("heading", blocks[-1][1] + "\n" + text, level, None)
        else:
            blocks.append(("heading", text, level, title))
    flush()
    return blocks


def _line_step(lines: list[Line]) -> float | None:
    """The typical distance from one line to the next on a page (the median step down)."""
    steps = [b.top - a.top for a, b in itertools.pairwise(lines)
             if a.top is not None and b.top is not None and b.top > a.top]
    return statistics.median(steps) if steps else None


def _paragraphs(lines: list[Line], typical: float | None) -> str:
    """Lines joined by line breaks; a blank line before a line set clearly further below
    the previous one than lines usually are (1.6x the page's typical line step), or above
    it (the next column)."""
    out = [lines[0].text.strip()]
    for prev, line in itertools.pairwise(lines):
        gap = line.top - prev.top if line.top is not None and prev.top is not None else None
        new_paragraph = typical is not None and gap is not None and (gap > 1.6 * typical or gap < -typical)
        out.append(("\n\n" if new_paragraph else "\n") + line.text.strip())
    return "".join(out)


def _ocr_lines(text: str) -> list[str]:
    return [line for line in text.replace("\f", "\n").splitlines() if line.strip()]


def _assemble(source_uri: str, raw_metadata: dict[str, Any], page_count: int, pages: list[_Page],
              outline: list[OutlineEntry], bad_pages: list[tuple[int, BaseException]],
              ocr_notes: dict[str, list[int]], no_text_reason: str) -> ExtractedDocument:
    """The document's text and sections from its pages' lines: running headers and footers
    dropped, headings (from the outline, else from font sizes) given their path."""
    running = running_lines([p.lines for p in pages])
    kept = [[line for i, line in enumerate(p.lines) if i not in drop] for p, drop in zip(pages, running, strict=True)]
    headings = outline_lines(kept, outline) if outline else {
        at: (level, None) for at, level in heading_levels(
            [lines if not p.ocr else [] for p, lines in zip(pages, kept, strict=True)]).items()}
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    path: list[tuple[int, str]] = []
    for p, (page, lines) in enumerate(zip(pages, kept, strict=True)):
        blocks = _blocks(lines, {i: found for (pg, i), found in headings.items() if pg == p}, _line_step(page.lines))
        blocks += [("table", table, 0, None) for table in page.tables]
        for kind, text, level, title in blocks:
            if parts:
                parts.append("\n\n")
                pos += 2
            parts.append(text)
            if kind == "heading":
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, " ".join((title or text).split())))
            heading_path = tuple(title for _, title in path)
            if kind == "paragraph":
                sections.extend(Section(s.start + pos, s.end + pos, s.kind, page.number, heading_path)
                                for s in paragraph_sections(text, 0, len(text)))
            else:
                sections.append(Section(pos, pos + len(text), kind, page.number, heading_path))
            pos += len(text)
    ocr_pages = [p.number for p in pages if p.ocr and p.lines]
    metadata: dict[str, Any] = {"pages": page_count, **_metadata(raw_metadata)}
    if ocr_pages:
        metadata["ocr_pages"] = ocr_pages
    empty = [p.number for p in pages if not p.lines and not p.tables]
    unmapped = {p.number: p.unmapped for p in pages if p.unmapped}
    garbled = [p.number for p in pages if p.garbled]
    if garbled:
        metadata["unmapped_glyph_pages"] = garbled
    return ExtractedDocument(
        source_uri, detect.PDF, "".join(parts), tuple(sections), metadata,
        _page_warnings(source_uri, page_count, bad_pages, empty, ocr_pages, ocr_notes, no_text_reason, unmapped,
                       garbled),
    )


def _page_warnings(source_uri: str, page_count: int, bad_pages: list[tuple[int, BaseException]],
                   empty_pages: list[int], ocr_pages: list[int], ocr_notes: dict[str, list[int]],
                   no_text_reason: str, unmapped: dict[int, int], garbled_pages: list[int]) -> tuple[str, ...]:
    """What was lost or guessed, page by page. Pages without a text layer (scans) and pages
    whose text layer is unusable (fonts without a Unicode mapping) are named apart: the
    second is a fault of the file's fonts, not a scan. ``unmapped``: page -> its glyphs
    without a mapping; ``garbled_pages``: the pages that made unusable."""
    notes = []
    if bad_pages:
        first_number, first_error = bad_pages[0]
        notes.append(f"{source_uri}: page(s) {_ranges([n for n, _ in bad_pages])} of {page_count} could not "
                     f"be read and were skipped (page {first_number}: {_describe(first_error)})")

    def garbled(numbers: list[int]) -> str:
        return (f"page(s) {_ranges(numbers)} of {page_count} draw their text in fonts without a Unicode mapping "
                f"({sum(unmapped[n] for n in numbers)} glyphs unreadable)")

    garbled_set = set(garbled_pages)
    scanned_ocr = [n for n in ocr_pages if n not in garbled_set]
    garbled_ocr = [n for n in ocr_pages if n in garbled_set]
    if scanned_ocr:
        notes.append(f"{source_uri}: no text layer on page(s) {_ranges(scanned_ocr)} of {page_count}; their text "
                     "comes from OCR and may contain recognition errors")
    if garbled_ocr:
        notes.append(f"{source_uri}: {garbled(garbled_ocr)}; their text comes from OCR and may contain "
                     "recognition errors")
    explained = {n for numbers in ocr_notes.values() for n in numbers}
    for reason, numbers in ocr_notes.items():
        unread = [n for n in numbers if n in empty_pages and n not in garbled_set]
        if unread:
            notes.append(f"{source_uri}: no text layer on page(s) {_ranges(unread)} of {page_count} "
                         f"(scanned? {reason})")
        lost = [n for n in numbers if n in empty_pages and n in garbled_set]
        if lost:
            notes.append(f"{source_uri}: {garbled(lost)}; left out ({reason})")
    rest = [n for n in empty_pages if n not in explained]
    if rest:
        notes.append(f"{source_uri}: no text layer on page(s) {_ranges(rest)} of {page_count} ({no_text_reason})")
    dropped = [n for n in unmapped if n not in garbled_set]
    if dropped:
        notes.append(f"{source_uri}: {sum(unmapped[n] for n in dropped)} glyph(s) on page(s) {_ranges(dropped)} "
                     f"of {page_count} are in fonts without a Unicode mapping and were left out")
    return tuple(notes)


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
