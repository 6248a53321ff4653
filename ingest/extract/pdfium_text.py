"""The text layer of PDF pages with PDFium (pypdfium2): lines with font size, weight and position.

Measured on the 56 PDFs of the reference corpus (``bench/extract_quality.py``), PDFium
keeps word boundaries where pdfminer/pdfplumber's default tolerances glue words (the
shared-mime-info spec: 999 words instead of 5,234) and reads the text layer ~50x faster.
It does not read vertical CJK writing and garbles fonts whose ToUnicode map it rejects;
:func:`read_page` says so (``fallback``) and the caller reads such a page with pdfplumber.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as raw

from ingest.extract.layout import Line, OutlineEntry

PdfiumError = pdfium.PdfiumError

#: Unicode PDFium returns for a hyphen it found at the end of a line (the line then
#: runs on into the next one without a break).
_LINE_END_HYPHEN = 0x02
#: At least this share of a page's characters unmapped (control characters or a
#: ToUnicode map PDFium rejects): pdfminer reads the page better.
_UNMAPPED_SHARE = 0.1
_INVISIBLE = 3  # text render mode: neither fill nor stroke (an OCR layer)
_BOLD = 600


@dataclass(frozen=True, slots=True)
class PdfiumPage:
    lines: tuple[Line, ...]
    #: why PDFium's text of this page cannot be trusted (None: it can)
    fallback: str | None
    #: the page draws two horizontal and two vertical rules, or two boxes: a ruled table
    #: may be there (on the reference corpus this skips 79 of the 141 pages with paths
    #: and no table, and misses none of the 122 with one)
    ruled: bool
    #: the page draws anything at all (images, paths or text)
    draws: bool


def open_document(data: bytes, password: str | None) -> pdfium.PdfDocument:
    return pdfium.PdfDocument(data, password=password or None)


def read_page(doc: pdfium.PdfDocument, index: int) -> PdfiumPage:
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            lines, unmapped, chars = _lines(textpage.raw, page.get_height())
            visible, empty, tall, ruled, drawn = _objects(page, textpage.raw)
        finally:
            textpage.close()
    finally:
        page.close()
    fallback = None
    if chars and unmapped >= _UNMAPPED_SHARE * chars:
        fallback = f"{unmapped} of {chars} characters without a Unicode mapping"
    elif visible and (2 * empty > visible or 10 * tall >= visible):
        fallback = f"{empty} of {visible} text objects without text (vertical writing?)"
    return PdfiumPage(tuple(lines), fallback, ruled, drawn > 0)


def _lines(tp: Any, height: float) -> tuple[list[Line], int, int]:
    """The page's lines in PDFium's reading order, and how many characters are unmapped."""
    lines: list[Line] = []
    buf: list[str] = []
    sizes: Counter[float] = Counter()
    bold = 0
    top: float | None = None
    unmapped = 0
    count = raw.FPDFText_CountChars(tp)
    left, right, bottom, upper = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()

    def close() -> None:
        nonlocal bold, top
        text = "".join(buf).rstrip()
        if text.strip():
            size = sizes.most_common(1)[0][0] if sizes else 0.0
            lines.append(Line(text, top, size, 2 * bold > sum(sizes.values())))
        buf.clear()
        sizes.clear()
        bold = 0
        top = None

    for i in range(count):
        code = raw.FPDFText_GetUnicode(tp, i)
        if code == 0x0A:
            close()
            continue
        if code == 0x0D:
            continue
        if code == _LINE_END_HYPHEN and raw.FPDFText_IsHyphen(tp, i):
            buf.append("-")
            close()
            continue
        if code < 0x20 and code != 0x09 or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            unmapped += 1
            continue
        if raw.FPDFText_HasUnicodeMapError(tp, i):
            unmapped += 1
        char = chr(code)
        buf.append(char)
        if not char.isspace():
            sizes[round(raw.FPDFText_GetFontSize(tp, i), 1)] += 1
            if raw.FPDFText_GetFontWeight(tp, i) >= _BOLD:
                bold += 1
            if top is None and raw.FPDFText_GetCharBox(tp, i, left, right, bottom, upper):
                top = round(height - upper.value, 1)
    close()
    return lines, unmapped, count


def _objects(page: pdfium.PdfPage, tp: Any) -> tuple[int, int, int, bool, int]:
    """Visible text objects, those of them PDFium finds no text in (and of those, the ones
    with an extent: vertical writing it cannot lay out), whether paths may rule a table,
    objects drawn."""
    visible = empty = tall = drawn = 0
    rules = Counter[str]()
    for obj in page.get_objects(max_depth=4):
        drawn += 1
        if obj.type == raw.FPDF_PAGEOBJ_PATH:
            x0, y0, x1, y1 = obj.get_bounds()
            width, height = x1 - x0, y1 - y0
            if height < 3 and width >= 10:
                rules["h"] += 1
            elif width < 3 and height >= 10:
                rules["v"] += 1
            elif width >= 10 and height >= 10:
                rules["box"] += 1
        elif obj.type == raw.FPDF_PAGEOBJ_TEXT:
            if raw.FPDFTextObj_GetTextRenderMode(obj.raw) == _INVISIBLE:
                continue
            visible += 1
            if raw.FPDFTextObj_GetText(obj.raw, tp, None, 0) <= 2:  # just the terminating NUL
                empty += 1
                x0, y0, x1, y1 = obj.get_bounds()
                if x1 - x0 > 1 or y1 - y0 > 1:
                    tall += 1
    ruled = (rules["h"] >= 2 and rules["v"] >= 2) or rules["box"] >= 2
    return visible, empty, tall, ruled, drawn


def outline(doc: pdfium.PdfDocument, max_entries: int = 2000) -> list[OutlineEntry]:
    """The document's bookmarks that point at a page, in order (a hostile outline is cut
    at ``max_entries``; pypdfium2 stops at loops itself)."""
    entries: list[OutlineEntry] = []
    for bookmark in doc.get_toc(max_depth=8):
        if len(entries) >= max_entries:
            break
        dest = bookmark.get_dest()
        index = dest.get_index() if dest is not None else None
        title = " ".join(bookmark.get_title().split())
        if index is None or not title:
            continue
        entries.append(OutlineEntry(title, bookmark.level, index, _dest_top(doc, dest, index)))
    return entries


#: Where each destination view mode keeps the y of the top of the view (PDF 32000 12.3.2.2).
_VIEW_TOP = {raw.PDFDEST_VIEW_XYZ: 1, raw.PDFDEST_VIEW_FITH: 0, raw.PDFDEST_VIEW_FITBH: 0, raw.PDFDEST_VIEW_FITR: 3}


def _dest_top(doc: pdfium.PdfDocument, dest: Any, index: int) -> float | None:
    """The destination's distance from the top of its page, when it names one."""
    mode, view = dest.get_view()
    at = _VIEW_TOP.get(mode)
    if at is None or len(view) <= at:
        return None
    y = float(view[at])
    height = float(doc.get_page_size(index)[1])
    return round(height - y, 1) if 0 < y <= height else None


def render_png(doc: pdfium.PdfDocument, index: int, dpi: float) -> bytes:
    """The page as a grayscale PNG at ``dpi`` (for OCR)."""
    import io

    page = doc[index]
    try:
        bitmap = page.render(scale=dpi / 72, grayscale=True, may_draw_forms=False)
        image = bitmap.to_pil()
    finally:
        page.close()
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
