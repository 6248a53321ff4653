"""qpdf's repair of damaged PDFs, and the salvage of pages from files it cannot repair.

Only files pdfminer cannot read get here (see ``pdf.py``). ``repair`` lets qpdf rebuild
the cross-reference table; when even qpdf finds no catalog or page tree (a file cut in
half), ``salvage`` appends a new page tree over the page objects that survive, in file
order, and qpdf rebuilds the cross-reference table around it.
"""

from __future__ import annotations

import dataclasses
import io
import re
import warnings
from decimal import Decimal
from typing import cast

import pikepdf

from schemas.errors import LimitExceededError

#: qpdf's warnings that say only that it is repairing, not what is wrong.
_QPDF_GENERIC_WARNINGS = {"file is damaged", "Attempting to reconstruct cross-reference table"}
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


def repair(data: bytes, password: str | None, problem: str) -> tuple[bytes, str]:
    """qpdf's in-memory repair of a damaged file, and the first thing qpdf found wrong (else ``problem``).

    qpdf rebuilds the cross-reference table by scanning the file for objects and (from
    qpdf 12) finds the catalog when the trailer is gone too; pdfminer's own fallback scan
    gives up at an object cut off by truncation. Raises ``QpdfFailed`` when qpdf cannot
    open it at all (no catalog or page tree found): the caller then tries ``salvage``.
    """
    stream = io.BytesIO(data)
    try:
        with pikepdf.open(stream, password=password or "") as pdf:
            repaired = _save(pdf)
            found = [_qpdf_message(w, stream) for w in pdf.get_warnings()]
    except pikepdf.PasswordError as exc:
        raise PasswordRequired from exc
    except pikepdf.PdfError as exc:
        raise QpdfFailed(_qpdf_message(str(exc), stream)) from exc
    specific = [w for w in found if w not in _QPDF_GENERIC_WARNINGS]
    return repaired, specific[0] if specific else problem


def _save(pdf: pikepdf.Pdf) -> bytes:
    """qpdf's rewrite, streams copied as they are (no decoding, no recompression).

    pdfminer decodes them anyway, and a cut-off stream stays readable up to the cut.
    pikepdf's warning that form widgets are not reachable from /AcroForm (a rebuilt
    catalog has none) is about display in Acrobat, not about the text.
    """
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pikepdf.PageCopyWarning)
        pdf.save(out, fix_metadata_version=False, compress_streams=False,
                 stream_decode_level=pikepdf.StreamDecodeLevel.none)
    return out.getvalue()


class QpdfFailed(Exception):
    """qpdf could not open the (patched) file; the message is qpdf's."""


class PasswordRequired(Exception):
    """qpdf needs a password (or a different one) to open the file."""


@dataclasses.dataclass(frozen=True)
class Salvage:
    """A file rebuilt around the page objects that survive; page numbers count them in file order."""

    data: bytes
    pages: int
    lost_fonts: tuple[int, ...]
    boxless: tuple[int, ...]
    box_from: str


def salvage(data: bytes, max_pages: int, source_uri: str) -> Salvage | None:
    """Rebuild a file around its surviving ``/Type /Page`` objects, or None when there are none.

    A regex only nominates page objects and finds free object numbers; qpdf parses
    everything (its recovery mode rebuilds the cross-reference table, finding the
    appended catalog and trailer), and a nominee it does not read as a page dictionary
    is dropped. The pages' /Parent is the lost page tree, so what they inherited from it
    (MediaBox, Resources) and the fonts that were in the lost part are filled in.
    """
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
            return Salvage(_save(pdf), len(pages), lost_fonts, boxless, box_from)
    except pikepdf.PdfError as exc:
        raise QpdfFailed(_qpdf_message(str(exc), stream)) from exc


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
    letter = " ".join(map(str, _US_LETTER))
    return (f"{placeholder} 0 obj\n<< /Type /Page /Parent {tree} 0 R /MediaBox [{letter}] /Resources << >> >>\n"
            f"endobj\n{tree} 0 obj\n<< /Type /Pages /Kids [{placeholder} 0 R] /Count 1 >>\nendobj\n"
            f"{catalog} 0 obj\n<< /Type /Catalog /Pages {tree} 0 R >>\nendobj\n"
            f"{font} 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont {_STAND_IN_FONT} >>\nendobj\n"
            f"trailer\n<< /Size {max(free) + 1} /Root {catalog} 0 R >>\nstartxref\n0\n%%EOF\n").encode()


def _adopt_pages(pdf: pikepdf.Pdf, refs: list[tuple[int, int]]) -> list[pikepdf.Dictionary]:
    """Make the nominees qpdf parsed as page dictionaries the pages, in file order, replacing the placeholder."""
    pages = [page for page in (pdf.get_object(*ref) for ref in refs)
             if isinstance(page, pikepdf.Dictionary) and page.get("/Type") == pikepdf.Name.Page]
    if pages:
        for page in pages:
            pdf.pages.append(pikepdf.Page(page))
        del pdf.pages[0]
    return pages


def _fill_media_boxes(pages: list[pikepdf.Dictionary]) -> tuple[tuple[int, ...], str]:
    """Give pages whose MediaBox was inherited from the lost tree the first surviving page's size (else Letter).

    Pages of a document mostly share a size. Returns the page numbers filled in and
    where their size came from.
    """
    boxes = [_media_box(page) for page in pages]
    found = next(((n, box) for n, box in enumerate(boxes, start=1) if box is not None), None)
    box = found[1] if found else pikepdf.Array(_US_LETTER)
    boxless = tuple(n for n, b in enumerate(boxes, start=1) if b is None)
    for number in boxless:
        pages[number - 1].MediaBox = box
    return boxless, f"the size of page {found[0]}" if found else "US Letter"


def _media_box(page: pikepdf.Dictionary) -> pikepdf.Array | None:
    """The page's own MediaBox if it is four numbers, else None."""
    box = page.get("/MediaBox")
    if isinstance(box, pikepdf.Array) and len(box) == 4 and all(isinstance(v, int | Decimal) for v in box):
        return box
    return None


def _stand_in_fonts(pages: list[pikepdf.Dictionary], font: pikepdf.Object) -> tuple[int, ...]:
    """Point every font a page's content selects but its resources lack at the stand-in ``font``.

    Fonts of form XObjects are left alone (their text, mostly figure labels, is read as
    pdfminer can). Returns the page numbers that got the stand-in.
    """
    return tuple(n for n, page in enumerate(pages, start=1) if _replace_lost_fonts(page, font))


def _replace_lost_fonts(page: pikepdf.Dictionary, font: pikepdf.Object) -> bool:
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


def _dictionary(owner: pikepdf.Dictionary, key: str) -> pikepdf.Dictionary:
    """``owner[key]``, made an empty dictionary if it is missing (lost) or not a dictionary."""
    value = owner.get(key)
    if isinstance(value, pikepdf.Dictionary):
        return value
    owner[key] = pikepdf.Dictionary()
    return cast(pikepdf.Dictionary, owner[key])  # (the stored copy, which writes go to)


def _qpdf_message(message: str, stream: io.BytesIO) -> str:
    """qpdf's message without pikepdf's name for the stream (``stream <_io.BytesIO object at 0x...>``)."""
    return message.removeprefix(f"stream {stream}").lstrip(": ")
