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
import re
import warnings
from decimal import Decimal
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
#: The wording of the "no text on page(s)" warning for a file read as it is.
_NO_TEXT_LAYER = "scanned? OCR is not run"

#: PDF white space (ISO 32000-1, 7.2.2). Possessive repeats below keep every match attempt
#: linear: a hostile run of blanks or digits cannot make the scan backtrack.
_WS = rb"[\0\t\n\f\r ]"
#: ``N G obj``; numbers of 10 digits and more are not object numbers qpdf can use.
_OBJ_HEADER = re.compile(rb"(?<![0-9])([0-9]{1,9})" + _WS + rb"++([0-9]{1,5})" + _WS + rb"++obj(?![A-Za-z0-9])")
#: ``N G obj`` or ``N G R``: an object number that is taken, by an object or by a reference to one.
_NUMBER_TAKEN = re.compile(rb"(?<![0-9])([0-9]{1,9})" + _WS + rb"++[0-9]{1,5}" + _WS + rb"++(?:obj|R)(?![A-Za-z0-9])")
#: ``/Type /Page`` and not ``/Type /Pages``: the name must end at a delimiter or white space.
_PAGE_TYPE = re.compile(rb"/Type" + _WS + rb"*+/Page(?![^\0\t\n\f\r /<>\[\]()%{}])")
#: Stands in for fonts lost with the damaged part of a file. A missing font leaves pdfminer
#: with zero-width glyphs that pile up and scramble word order; any real widths keep each
#: text run in order. Times-Roman is the commonest body font and pdfminer has its metrics.
_STAND_IN_FONT = "/Times-Roman"
_US_LETTER = (0, 0, 612, 792)


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
        try:
            repaired, damage = _repair(data, source_uri, password, problem)
        except _QpdfFailed as failed:
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
        unrepaired = f"qpdf could not repair it: {qpdf_error}"
        try:
            salvage = _salvage(data, self.max_pages, source_uri)
        except _QpdfFailed as failed:
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
    gives up at an object cut off by truncation. Raises ``_QpdfFailed`` when qpdf cannot
    open it at all (no catalog or page tree found): the caller then tries ``_salvage``.
    pikepdf is imported here (and in the helpers below) rather than at the top because
    only damaged files need it and each sandboxed child would otherwise pay for the import.
    """
    import pikepdf

    stream = io.BytesIO(data)
    try:
        with pikepdf.open(stream, password=password or "") as pdf:
            repaired = _save(pdf)
            found = [_qpdf_message(w, stream) for w in pdf.get_warnings()]
    except pikepdf.PasswordError as exc:
        raise _password_error(source_uri, password) from exc
    except pikepdf.PdfError as exc:
        raise _QpdfFailed(_qpdf_message(str(exc), stream)) from exc
    specific = [w for w in found if w not in _QPDF_GENERIC_WARNINGS]
    return repaired, specific[0] if specific else problem


def _save(pdf: Any) -> bytes:
    """qpdf's rewrite, streams copied as they are (no decoding, no recompression).

    pdfminer decodes them anyway, and a cut-off stream stays readable up to the cut.
    pikepdf's warning that form widgets are not reachable from /AcroForm (a rebuilt
    catalog has none) is about display in Acrobat, not about the text.
    """
    import pikepdf

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pikepdf.PageCopyWarning)
        pdf.save(out, fix_metadata_version=False, compress_streams=False,
                 stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return out.getvalue()


class _QpdfFailed(Exception):
    """qpdf could not open the (patched) file; the message is qpdf's."""


@dataclasses.dataclass(frozen=True)
class _Salvage:
    """A file rebuilt around the page objects that survive; page numbers count them in file order."""

    data: bytes
    pages: int
    lost_fonts: tuple[int, ...]
    boxless: tuple[int, ...]
    box_from: str


def _salvage(data: bytes, max_pages: int, source_uri: str) -> _Salvage | None:
    """Rebuild a file around its surviving ``/Type /Page`` objects, or None when there are none.

    A regex only nominates page objects and finds free object numbers; qpdf parses
    everything (its recovery mode rebuilds the cross-reference table, finding the
    appended catalog and trailer), and a nominee it does not read as a page dictionary
    is dropped. The pages' /Parent is the lost page tree, so what they inherited from it
    (MediaBox, Resources) and the fonts that were in the lost part are filled in.
    """
    import pikepdf

    refs, last = _page_candidates(data, max_pages)
    if len(refs) > max_pages:
        raise LimitExceededError(source_uri, f"more than {max_pages} page objects survive, "
                                             f"exceeds the limit of {max_pages}")
    if not refs:
        return None
    free = _free_numbers(data, 4)
    stream = io.BytesIO(data + _terminator(data, last) + _placeholder_tree(free))
    try:
        with pikepdf.open(stream) as pdf:
            pages = _adopt_pages(pdf, refs)
            if not pages:
                return None
            boxless, box_from = _fill_media_boxes(pages)
            lost_fonts = _stand_in_fonts(pages, pdf.get_object(free[3], 0))
            return _Salvage(_save(pdf), len(pages), lost_fonts, boxless, box_from)
    except pikepdf.PdfError as exc:
        raise _QpdfFailed(_qpdf_message(str(exc), stream)) from exc


def _page_candidates(data: bytes, max_pages: int) -> tuple[list[tuple[int, int]], int]:
    """Objects whose dictionary says ``/Type /Page``, in file order (at most ``max_pages + 1``),
    and where the last object's header ends (-1: no object).

    An object's dictionary is read up to its ``stream`` keyword or the next header, so
    each byte is looked at a bounded number of times whatever the input.
    """
    pages: dict[tuple[int, int], None] = {}  # ordered and without duplicates
    previous = None
    for header in _OBJ_HEADER.finditer(data):
        if previous is not None and len(pages) <= max_pages and _is_page(data, previous.end(), header.start()):
            pages.setdefault((int(previous[1]), int(previous[2])))
        previous = header
    if previous is not None and len(pages) <= max_pages and _is_page(data, previous.end(), len(data)):
        pages.setdefault((int(previous[1]), int(previous[2])))
    return list(pages), previous.end() if previous else -1


def _free_numbers(data: bytes, count: int) -> list[int]:
    """The ``count`` lowest object numbers that no object has and no reference names.

    Not the highest plus one: references to objects lost with the damaged part must
    stay dangling (a surviving page's font reference would otherwise find the new
    catalog), and qpdf ignores object numbers above about a third of the file's size,
    which one stray ``99999 0 obj`` in binary data would push the new objects past.
    Each ``N G R`` takes 5 bytes or more, so the lowest free numbers fit in the bitmap.
    """
    taken = bytearray(len(data) // 5 + count + 1)
    for match in _NUMBER_TAKEN.finditer(data):
        if int(match[1]) < len(taken):
            taken[int(match[1])] = 1
    free: list[int] = []
    while len(free) < count:
        free.append(taken.find(0, free[-1] + 1 if free else 1))
    return free


def _is_page(data: bytes, start: int, end: int) -> bool:
    stream = data.find(b"stream", start, end)
    return _PAGE_TYPE.search(data, start, end if stream < 0 else stream) is not None


def _terminator(data: bytes, last: int) -> bytes:
    """What the object cut off by the damage lacks: ``endstream`` if it was cut inside its stream, ``endobj``.

    Without them qpdf would read the appended objects as part of the cut one.
    """
    if last < 0 or data.find(b"endobj", last) >= 0:
        return b"\n"
    in_stream = data.find(b"stream", last) >= 0 and data.find(b"endstream", last) < 0
    return (b"\nendstream" if in_stream else b"") + b"\nendobj\n"


def _placeholder_tree(free: list[int]) -> bytes:
    """A catalog, a page tree holding one blank placeholder page, the stand-in font and a trailer.

    The surviving pages are adopted only once qpdf has parsed them (``_adopt_pages``):
    as kids at open time, one that qpdf cannot read (a false nominee, an object it
    ignores) can make the whole open fail, and qpdf would quietly give Letter to the
    pages that lost their MediaBox. The font is written here rather than made by qpdf,
    whose next object number may be one a dangling reference names. ``startxref 0``
    points at no cross-reference table, so qpdf rebuilds it (finding the new trailer)
    even when the file's own table and trailer survive but lead to no page tree.
    """
    tree, catalog, placeholder, font = free
    return (f"{placeholder} 0 obj\n<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Resources << >> >>\n"
            f"endobj\n{tree} 0 obj\n<< /Type /Pages /Kids [{placeholder} 0 R] /Count 1 >>\nendobj\n"
            f"{catalog} 0 obj\n<< /Type /Catalog /Pages {tree} 0 R >>\nendobj\n"
            f"{font} 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont {_STAND_IN_FONT} >>\nendobj\n"
            f"trailer\n<< /Size {max(free) + 1} /Root {catalog} 0 R >>\nstartxref\n0\n%%EOF\n").encode()


def _adopt_pages(pdf: Any, refs: list[tuple[int, int]]) -> list[Any]:
    """Make the nominees qpdf parsed as page dictionaries the pages, in file order, replacing the placeholder."""
    import pikepdf

    pages = [page for page in (pdf.get_object(*ref) for ref in refs)
             if isinstance(page, pikepdf.Dictionary) and page.get("/Type") == pikepdf.Name.Page]
    if pages:
        for page in pages:
            pdf.pages.append(pikepdf.Page(page))
        del pdf.pages[0]
    return pages


def _fill_media_boxes(pages: list[Any]) -> tuple[tuple[int, ...], str]:
    """Give pages whose MediaBox was inherited from the lost tree the first surviving page's size (else Letter).

    Pages of a document mostly share a size. Returns the page numbers filled in and
    where their size came from.
    """
    import pikepdf

    boxes = [_media_box(page) for page in pages]
    found = next(((n, box) for n, box in enumerate(boxes, start=1) if box is not None), None)
    box = found[1] if found else pikepdf.Array(_US_LETTER)
    boxless = tuple(n for n, b in enumerate(boxes, start=1) if b is None)
    for number in boxless:
        pages[number - 1].MediaBox = box
    return boxless, f"the size of page {found[0]}" if found else "US Letter"


def _media_box(page: Any) -> Any:
    """The page's own MediaBox if it is four numbers, else None."""
    import pikepdf

    box = page.get("/MediaBox")
    if isinstance(box, pikepdf.Array) and len(box) == 4 and all(isinstance(v, int | Decimal) for v in box):
        return box
    return None


def _stand_in_fonts(pages: list[Any], font: Any) -> tuple[int, ...]:
    """Point every font a page's content selects but its resources lack at the stand-in ``font``.

    Fonts of form XObjects are left alone (their text, mostly figure labels, is read as
    pdfminer can). Returns the page numbers that got the stand-in.
    """
    return tuple(n for n, page in enumerate(pages, start=1) if _replace_lost_fonts(page, font))


def _replace_lost_fonts(page: Any, font: Any) -> bool:
    import pikepdf

    try:
        selected = {str(tf.operands[0]) for tf in pikepdf.parse_content_stream(page, "Tf")
                    if isinstance(tf, pikepdf.ContentStreamInstruction) and tf.operands
                    and isinstance(tf.operands[0], pikepdf.Name)}
    except (pikepdf.PdfError, TypeError):
        return False  # unreadable content: pdfplumber reports the page
    if not selected:
        return False
    fonts = _dictionary(_dictionary(page, "/Resources"), "/Font")
    lost = [name for name in selected if not isinstance(fonts.get(name), pikepdf.Dictionary)]
    for name in lost:
        fonts[name] = font
    return bool(lost)


def _dictionary(owner: Any, key: str) -> Any:
    """``owner[key]``, made an empty dictionary if it is missing (lost) or not a dictionary."""
    import pikepdf

    value = owner.get(key)
    if not isinstance(value, pikepdf.Dictionary):
        owner[key] = pikepdf.Dictionary()
        value = owner[key]
    return value


def _salvage_note(source_uri: str, qpdf_error: str, salvage: _Salvage, with_text: list[int]) -> str:
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
