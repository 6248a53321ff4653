"""HTML walked block by block, for pages whose whole body is content.

trafilatura's heuristics are written for articles among site chrome. Generated
documentation (DocBook XSL, Texinfo), the posts of a Q&A page and the HTML body of an
e-mail are content from end to end except their navigation, and on them those
heuristics lose what matters most: headings, definition terms, all but the first post.
This walker keeps every block in document order: headings with their level, paragraphs,
``<pre>`` as code, lists, definition lists (each term its own block, before its
definition), data tables as Markdown (layout tables are walked as containers). Scripts,
styles, forms, hidden elements and permalink marks ("¶") are left out, and
:func:`drop_navigation` removes navigation blocks first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ingest.extract.tables import markdown_table
from schemas.documents import Section

#: (kind, text, heading level): level is 1-6 for a heading, 0 for any other block.
Block = tuple[str, str, int]

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SKIP = frozenset({
    "script", "style", "noscript", "template", "head", "title", "meta", "link", "svg", "canvas", "iframe",
    "object", "embed", "form", "button", "input", "select", "option", "textarea", "label", "img", "picture",
    "video", "audio", "source", "map", "nav", "annotation", "annotation-xml",
})
#: Elements that end the running paragraph (and start their own block or blocks).
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "dialog", "dir",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "hr", "html", "li",
    "main", "menu", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul", *_HEADINGS,
})
#: A line break (``<br>``) in the running paragraph; NUL cannot occur in parsed HTML text.
_BR = "\x00"
_PERMALINK_MARKS = frozenset({"¶", "#", "§", "🔗"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)

#: Links that move between the pages of a manual or a paginated text.
_NAV_RELS = frozenset({"next", "prev", "previous", "up", "home", "index", "contents", "toc", "start", "first",
                       "last", "top"})
_NAV_ACCESSKEYS = frozenset({"n", "p", "u", "h", "t"})
#: A navigation block: at most this much text that is not link text, and this much in all.
_NAV_MAX_OTHER_TEXT = 80
_NAV_MAX_TEXT = 400
#: Generators' own navigation and tables of contents, by class.
DOCBOOK_NAVIGATION = ("navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples",
                      "list-of-procedures", "list-of-equations")
TEXINFO_NAVIGATION = ("header", "nav-panel", "navigation", "menu", "mini-toc", "section-toc", "contents",
                      "shortcontents", "element-contents", "region-contents", "nav-bar")


def blocks(roots: Iterable[Any]) -> list[Block]:
    """The blocks of each root element, in order."""
    walker = _Walker()
    for root in roots:
        walker.walk(root)
        walker.flush()
    return [b for b in walker.out if b[1].strip()]


def assemble(found: list[Block]) -> tuple[str, list[Section]]:
    """The text (blocks joined by blank lines) and a section per block, each with the path of
    the headings above it."""
    parts: list[str] = []
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    pos = 0
    for kind, text, level in found:
        if parts:
            parts.append("\n\n")
            pos += 2
        if kind == "heading":
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, text))
        parts.append(text)
        sections.append(Section(pos, pos + len(text), kind, None, tuple(h for _, h in path)))
        pos += len(text)
    return "".join(parts), sections


def drop_navigation(root: Any, classes: Iterable[str] = ()) -> None:
    """Remove navigation in place: elements carrying one of ``classes``, and any small block
    made of next/previous/up links (``rel`` or ``accesskey``) with little text of its own
    (Texinfo's "Next: …, Previous: …, Up: …", DocBook's Prev/Up/Home/Next table)."""
    wanted = set(classes)
    if wanted:
        for el in list(root.iter()):
            if isinstance(el.tag, str) and wanted & classes_of(el) and el.getparent() is not None:
                el.drop_tree()
    for link in list(root.iter("a")):
        if link.getparent() is None or not _is_nav_link(link):
            continue
        block = _navigation_block(link)
        if block is not None and block.getparent() is not None:
            block.drop_tree()


def classes_of(el: Any) -> set[str]:
    """``el``'s class names, lower-cased (DocBook's DSSSL stylesheets write ``CLASS="TOC"``)."""
    return set((el.get("class") or "").lower().split())


def _is_nav_link(link: Any) -> bool:
    rels = set((link.get("rel") or "").lower().split())
    return bool(rels & _NAV_RELS) or (link.get("accesskey") or "").lower() in _NAV_ACCESSKEYS


def _navigation_block(link: Any) -> Any | None:
    """The largest block around ``link`` that is only navigation, or None."""
    best = None
    el = link.getparent()
    while el is not None and isinstance(el.tag, str) and el.tag not in ("body", "html"):
        if el.tag in _BLOCK:
            if not _only_navigation(el):
                break
            best = el
        el = el.getparent()
    return best


def _only_navigation(el: Any) -> bool:
    if el.tag in _HEADINGS or any(True for _ in el.iter("pre", "h1", "h2", "h3", "h4", "h5", "h6")):
        return False
    text = _squash(el.text_content())
    if len(text) > _NAV_MAX_TEXT:
        return False
    link_text = sum(len(_squash(a.text_content())) for a in el.iter("a"))
    return len(text) - link_text <= _NAV_MAX_OTHER_TEXT


def inline_text(el: Any, skip: frozenset[str] = frozenset()) -> str:
    """The text of ``el`` on one line (whitespace collapsed; blocks inside it joined by a
    space), skipping what the walker skips and the elements named in ``skip``."""
    walker = _Walker(flat=True, skip=skip)
    walker.inline(el, with_tail=False)
    return _squash("".join(walker.buffer))


class _Walker:
    def __init__(self, *, flat: bool = False, skip: frozenset[str] = frozenset()) -> None:
        self.out: list[Block] = []
        self.buffer: list[str] = []
        self.flat = flat  # everything is inline text (a heading, a table cell, a list item)
        self.skip = _SKIP | skip

    def flush(self) -> None:
        if self.buffer:
            lines = (_squash(line) for line in "".join(self.buffer).split(_BR))
            text = "\n".join(line for line in lines if line)
            if text:
                self.out.append(("paragraph", text, 0))
            self.buffer = []

    def walk(self, el: Any) -> None:
        """Blocks of ``el`` (its tail is its parent's business)."""
        tag = _tag(el)
        if tag is None or tag in self.skip or _hidden(el):
            return
        if tag not in _BLOCK:
            self.inline(el, with_tail=False)
            return
        self.flush()
        if tag in _HEADINGS:
            text = inline_text(el)
            if text:
                self.out.append(("heading", text, _HEADINGS[tag]))
        elif tag == "pre":
            code = el.text_content().strip("\n").rstrip()
            if code.strip():
                self.out.append(("code", code, 0))
        elif tag in ("ul", "ol", "dir", "menu"):
            lines = _list_lines(el, 0)
            if lines:
                self.out.append(("paragraph", "\n".join(lines), 0))
        elif tag == "table" and _is_data_table(el):
            table = markdown_table([[inline_text(cell) for cell in row] for row in _rows(el)])
            if table:
                self.out.append(("table", table, 0))
        elif tag != "hr":
            self.children(el)
        self.flush()

    def children(self, el: Any) -> None:
        if el.text:
            self.buffer.append(el.text)
        for child in el:
            self.walk(child)
            if child.tail:
                self.buffer.append(child.tail)

    def inline(self, el: Any, *, with_tail: bool) -> None:
        tag = _tag(el)
        if tag is not None and tag not in self.skip and not _hidden(el) and not _permalink(el):
            if tag == "br":
                self.buffer.append(" " if self.flat else _BR)
            elif tag in _BLOCK and not self.flat:  # a block inside an inline element (<a><div>…</div></a>)
                self.walk(el)
            else:
                self.buffer.append(" " if tag in _BLOCK else "")
                if el.text:
                    self.buffer.append(el.text)
                for child in el:
                    self.inline(child, with_tail=True)
                self.buffer.append(" " if tag in _BLOCK else "")
        if with_tail and el.tail:
            self.buffer.append(el.tail)


_LISTS = frozenset({"ul", "ol", "dir", "menu"})


def _list_lines(el: Any, depth: int) -> list[str]:
    """"- item" lines ("1." in an ordered list), nested lists indented under their item."""
    lines: list[str] = []
    number = 0
    for item in el:
        if _tag(item) != "li" or _hidden(item):
            continue
        number += 1
        mark = f"{number}." if _tag(el) == "ol" else "-"
        text = inline_text(item, skip=_LISTS)
        if text:
            lines.append("  " * depth + f"{mark} {text}")
        for nested in item.iter(*_LISTS):
            if nested is not item and _closest(nested, "li") is item and _closest(nested, *_LISTS) is el:
                lines += _list_lines(nested, depth + 1)
    return lines


def _rows(table: Any) -> list[list[Any]]:
    rows = [[cell for cell in tr if _tag(cell) in ("td", "th")]
            for tr in table.iter("tr") if _closest(tr, "table") is table]
    return [r for r in rows if r]


def _closest(el: Any, *tags: str) -> Any:
    """The nearest ancestor of ``el`` with one of ``tags``."""
    parent = el.getparent()
    while parent is not None and _tag(parent) not in tags:
        parent = parent.getparent()
    return parent


def _is_data_table(table: Any) -> bool:
    """Two or more rows and columns of cells holding text: no nested table, list, code or heading."""
    if (table.get("role") or "").lower() in ("presentation", "none"):
        return False
    if any(e is not table for e in table.iter("table", "pre", "ul", "ol", "dl", "blockquote", *_HEADINGS)):
        return False
    rows = _rows(table)
    return len(rows) >= 2 and max(len(r) for r in rows) >= 2


def _tag(el: Any) -> str | None:
    tag = el.tag
    return tag.lower() if isinstance(tag, str) else None


def _hidden(el: Any) -> bool:
    if el.get("hidden") is not None or (el.get("aria-hidden") or "").lower() == "true":
        return True
    style = el.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def _permalink(el: Any) -> bool:
    """A heading's or definition's self-link ("¶" after the text; Sphinx, Texinfo, GitHub)."""
    if _tag(el) != "a" or not el.get("href", "").startswith("#"):
        return False
    return _squash(el.text_content()) in _PERMALINK_MARKS or "copiable" in (el.get("class") or "")


def _squash(text: str) -> str:
    return " ".join(text.split())
