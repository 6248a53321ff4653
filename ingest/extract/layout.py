"""Page layout as lines: running headers and footers, headings from outlines and font sizes.

Pure functions of lines that a PDF reader produced (text, position, font size and weight),
so that they are tested without a PDF and shared by every PDF text engine.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a page in reading order.

    ``top`` is its distance from the top of the page in points (``None`` when the
    engine does not know it); ``size`` is the dominant font size in points and ``bold``
    whether most of its characters are set in a bold weight.
    """

    text: str
    top: float | None = None
    size: float = 0.0
    bold: bool = False


@dataclass(frozen=True, slots=True)
class OutlineEntry:
    """A bookmark: its title, nesting level (0 = top), 0-based page index and, if the
    destination says, its distance from the top of that page in points."""

    title: str
    level: int
    page: int
    top: float | None = None


# --- running headers and footers -----------------------------------------------------

_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"\b[ivxlcdm]{1,7}\b")
_SPACE = re.compile(r"\s+")


def running_key(text: str) -> str:
    """What stays the same when a header or footer repeats: the text without its page
    number (digits and roman numerals dropped), case and spacing folded."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _ROMAN.sub("", _DIGITS.sub("", folded))
    return _SPACE.sub(" ", folded).strip()


def running_lines(pages: Sequence[Sequence[Line]], *, edge: int = 3, min_pages: int = 3,
                  share: float = 0.5) -> list[set[int]]:
    """For each page, the indexes of its lines that are running headers or footers.

    A line is a candidate when it is among the ``edge`` topmost or bottommost lines of
    its page (by ``top`` when known, else by reading order). It is a running line when
    its :func:`running_key` is a candidate on at least ``share`` of the pages (and on at
    least ``min_pages`` pages), or on that share of the odd or of the even pages (books
    alternate their headers). Page numbers alone ("12", "- 12 -", "Page 3 of 10") fold to
    the same key and go too. A document with fewer than ``min_pages`` pages keeps every line.
    """
    if len(pages) < min_pages:
        return [set() for _ in pages]
    candidates: list[dict[str, list[int]]] = []
    for lines in pages:
        order = sorted(range(len(lines)), key=lambda i: (lines[i].top if lines[i].top is not None else i, i))
        zone = order[:edge] + order[-edge:] if len(order) > 2 * edge else order
        keys: dict[str, list[int]] = {}
        for i in zone:
            if lines[i].text.strip():
                keys.setdefault(running_key(lines[i].text), []).append(i)
        candidates.append(keys)
    everywhere = Counter(key for keys in candidates for key in keys)
    by_parity = [Counter(key for keys in candidates[parity::2] for key in keys) for parity in (0, 1)]
    needed = max(min_pages, math.ceil(share * len(pages)))
    needed_parity = [max(min_pages, math.ceil(share * 2 * len(pages[parity::2]))) for parity in (0, 1)]

    def running(key: str) -> bool:
        if _is_prose(key):
            return False
        return everywhere[key] >= needed or any(
            by_parity[p][key] >= needed_parity[p] for p in (0, 1) if len(pages[p::2]) >= min_pages)

    return [{i for key, idx in keys.items() if running(key) for i in idx} for keys in candidates]


def _is_prose(key: str) -> bool:
    """A long sentence-like line is body text even if it repeats (a boilerplate paragraph
    line at the top of every form page is rare; losing body text is worse)."""
    return len(key) > 160


# --- headings ------------------------------------------------------------------------

_MAX_HEADING_CHARS = 120
_MAX_LEVELS = 4
#: "2", "2.", "2.1", "2.1.3" then a space and a word: the numbering gives the level.
_NUMBERED = re.compile(r"^(\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+\w")
#: Captions set like headings are not headings.
_CAPTION = re.compile(r"^(fig\.|figure|table|tab\.|listing|abb\.|abbildung|tabelle)\s*\d", re.IGNORECASE)


def heading_levels(pages: Sequence[Sequence[Line]]) -> dict[tuple[int, int], int]:
    """Lines that look like headings, by font: ``{(page index, line index): level}``, 1 = top.

    The body style is the (size, weight) that carries most characters. A heading is a
    short line with letters whose font is at least 12% larger than the body's, or as
    large and bold when the body is not. Levels rank the heading styles, largest first
    (bold before regular at equal size), at most four. A style used for more than a
    fifth of the lines, or on average for more than three lines a page, is not a heading
    style (a bold table, a large-print document). A numbered heading set larger than the
    body ("3.2 Trace Trees") takes its level from its numbering (bold-only numbered lines
    are as often list items). Returns nothing when no line has a size.
    """
    weight: Counter[tuple[float, bool]] = Counter()
    count: Counter[tuple[float, bool]] = Counter()
    total = 0
    for lines in pages:
        for line in lines:
            if line.size > 0 and line.text.strip():
                style = _style(line)
                weight[style] += len(line.text)
                count[style] += 1
                total += 1
    if not weight:
        return {}
    body_size, body_bold = weight.most_common(1)[0][0]

    def is_heading_style(style: tuple[float, bool]) -> bool:
        size, bold = style
        if size >= body_size * 1.12:
            pass
        elif not (bold and not body_bold and size >= body_size - 0.25):
            return False
        return count[style] <= max(2, total // 5) and count[style] <= 3 * max(1, len(pages))

    styles = sorted((s for s in count if is_heading_style(s)), key=lambda s: (-s[0], not s[1]))
    rank = {style: min(i + 1, _MAX_LEVELS) for i, style in enumerate(styles)}
    found: dict[tuple[int, int], int] = {}
    for p, lines in enumerate(pages):
        for i, line in enumerate(lines):
            style = _style(line)
            larger = style[0] >= body_size * 1.12
            if line.size > 0 and style in rank and _looks_like_heading(line.text, larger=larger):
                numbered = _NUMBERED.match(line.text.strip()) if larger else None
                found[(p, i)] = min(numbered.group(1).count(".") + 1, _MAX_LEVELS) if numbered else rank[style]
    return found


def _style(line: Line) -> tuple[float, bool]:
    return (round(line.size * 2) / 2, line.bold)


def _looks_like_heading(text: str, *, larger: bool) -> bool:
    """Short, starts with a letter or digit (not a bullet), has letters, does not run on;
    a heading set only in bold (not larger) is held to a shorter length: bold lead-ins of
    paragraphs are common. Captions ("Figure 3.") and long sentences are not headings."""
    stripped = text.strip()
    limit = _MAX_HEADING_CHARS if larger else _MAX_HEADING_CHARS * 2 // 3
    return (0 < len(stripped) <= limit and stripped[0].isalnum() and sum(c.isalpha() for c in stripped) >= 2
            and not stripped.endswith((",", ";")) and not (stripped.endswith(".") and len(stripped) > 40)
            and not _CAPTION.match(stripped))


def outline_lines(pages: Sequence[Sequence[Line]],
                  outline: Sequence[OutlineEntry]) -> dict[tuple[int, int], tuple[int, str]]:
    """Where each bookmark's heading is: ``{(page index, line index): (level, title)}``, 1 = top.

    A bookmark lands on the first line of its page (at or below its destination, when
    the destination gives a position) whose folded text starts with the folded title,
    or that the title starts with (a title wrapped over lines). A bookmark whose title is
    not on its page lands on the first line at or below its destination, or on the page's
    first line. Bookmarks that point outside the pages are ignored.
    """
    found: dict[tuple[int, int], tuple[int, str]] = {}
    for entry in outline:
        if not 0 <= entry.page < len(pages) or not pages[entry.page]:
            continue
        lines = pages[entry.page]
        title = _fold(entry.title)
        below = [i for i, line in enumerate(lines)
                 if entry.top is None or line.top is None or line.top >= entry.top - 2]
        order = below or list(range(len(lines)))
        match = next((i for i in order if title and (_fold(lines[i].text).startswith(title)
                                                     or (len(_fold(lines[i].text)) >= 4
                                                         and title.startswith(_fold(lines[i].text))))), None)
        if match is None:
            match = order[0]
        found.setdefault((entry.page, match), (min(entry.level + 1, 8), entry.title))
    return found


def _fold(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def heading_paths(levels: Sequence[int | None], titles: Sequence[str]) -> list[tuple[str, ...]]:
    """The heading path in force at each of a run of lines.

    ``levels[i]`` is the level of line ``i`` if it is a heading (1 = top), else ``None``;
    a heading's own path ends with its title. A heading closes every open heading at its
    level or deeper.
    """
    stack: list[tuple[int, str]] = []
    out: list[tuple[str, ...]] = []
    for level, title in zip(levels, titles, strict=True):
        if level is not None:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(title.split())))
        out.append(tuple(t for _, t in stack))
    return out
