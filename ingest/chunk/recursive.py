"""Structure-first splitting: headings, sections, paragraphs, lines, sentences, words, tokens.

Pieces are found with regexes over char offsets (nothing is copied or stripped and
searched for again), counted exactly from the document's single tokenization
(:class:`TokenMap`), and merged greedily up to the budget. A merge is only accepted on
an exact count of the merged span, so the budget holds whatever BPE does at the seams;
the sum of the parts' counts only serves to skip merges that cannot fit.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.chunk.base import RecursiveConfig, Span, assemble, build_config, describe
from ingest.chunk.tokens import DEFAULT_ENCODING, TokenMap, check_encoding, get_encoding, take_tokens
from schemas.documents import Chunk, ExtractedDocument, Section

if TYPE_CHECKING:
    import tiktoken

# Merged BPE counts can be a little below the parts' sum (pieces fuse at the seam);
# merges whose parts sum to more than budget + this are not even tried.
_SEAM_SLACK = 8

Cuts = Callable[[str, int, int], list[int]]


def regex_cuts(pattern: str) -> Cuts:
    """Cut positions at the start of every match of a separator pattern."""
    compiled = re.compile(pattern)

    def cuts(text: str, a: int, b: int) -> list[int]:
        return [m.start() for m in compiled.finditer(text, a, b)]

    return cuts


PROSE_LEVELS: tuple[Cuts, ...] = (
    regex_cuts(r"\n[ \t\r\f\v]*\n\s*"),  # paragraphs
    regex_cuts(r"\n\s*"),  # lines
    regex_cuts(r"(?<=[.!?…])\s+|(?<=[。！？])"),  # sentences
    regex_cuts(r"(?<=[,;:])\s+|(?<=[，；：、])"),  # clauses
    regex_cuts(r"\s+"),  # words
)

CODE_LEVELS: tuple[Cuts, ...] = (
    regex_cuts(r"\n[ \t\r\f\v]*\n\s*"),  # blank lines
    regex_cuts(r"\n"),  # lines
    regex_cuts(r"\s+"),  # words
)

def trim_prose(text: str, a: int, b: int) -> tuple[int, int]:
    """Drop surrounding whitespace (by moving offsets, never by copying)."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def trim_code(text: str, a: int, b: int) -> tuple[int, int]:
    """Drop blank lines and trailing whitespace, but keep the first line's indentation."""
    first, b = trim_prose(text, a, b)
    line_start = text.rfind("\n", a, first) + 1
    return (max(a, line_start) if first < b else first), b


@dataclass(frozen=True, slots=True)
class Splitter:
    """Recursive splitting of char ranges of one document into spans within budget."""

    tokens: TokenMap
    budget: int
    levels: Sequence[Cuts]
    trim: Callable[[str, int, int], tuple[int, int]] = trim_prose

    def split(self, a: int, b: int, level: int = 0, first: Cuts | None = None) -> list[Span]:
        """Spans covering every non-blank char of [a, b), each within the budget."""
        a, b = self.trim(self.tokens.text, a, b)
        if a >= b:
            return []
        count = self.tokens.count(a, b)
        if count <= self.budget:
            return [Span(a, b, count)]
        return self._split_oversize(a, b, level, first)

    def _split_oversize(self, a: int, b: int, level: int, first: Cuts | None) -> list[Span]:
        text = self.tokens.text
        if first is not None:
            pieces = self._pieces(a, b, first(text, a, b))
            if len(pieces) > 1:
                return self.merge([s for pa, pb in pieces for s in self.split(pa, pb, level)])
        while level < len(self.levels):
            pieces = self._pieces(a, b, self.levels[level](text, a, b))
            level += 1
            if len(pieces) > 1:
                return self.merge([s for pa, pb in pieces for s in self.split(pa, pb, level)])
        return list(self._token_windows(a, b))

    @staticmethod
    def _pieces(a: int, b: int, cuts: list[int]) -> list[tuple[int, int]]:
        bounds = [a, *(c for c in cuts if a < c < b), b]
        return [(x, y) for x, y in zip(bounds, bounds[1:], strict=False) if y > x]

    def _token_windows(self, a: int, b: int) -> Iterator[Span]:
        """Last resort for text with no separator: consecutive token windows."""
        text = self.tokens.text
        while a < b:
            end, count = take_tokens(self.tokens, a, b, self.budget)
            ta, tb = self.trim(text, a, end)
            if ta < tb:
                trimmed = self.tokens.count(ta, tb)
                yield Span(ta, tb, trimmed) if trimmed <= self.budget else Span(a, end, count)
            a = end

    def merge(self, spans: list[Span]) -> list[Span]:
        """Greedily join neighbours while the exact count of the joined span fits."""
        if not spans:
            return spans
        merged: list[Span] = []
        current = spans[0]
        for span in spans[1:]:
            if current.tokens + span.tokens <= self.budget + _SEAM_SLACK:
                joined = self.tokens.count(current.start, span.end)
                if joined <= self.budget:
                    current = Span(current.start, span.end, joined)
                    continue
            merged.append(current)
            current = span
        merged.append(current)
        return merged


def section_cuts(sections: Sequence[Section]) -> Cuts:
    """Cut positions at section starts: the document's own structure comes first."""
    starts = [s.start for s in sections]

    def cuts(text: str, a: int, b: int) -> list[int]:
        return starts[bisect_right(starts, a) : bisect_left(starts, b)]

    return cuts


def heading_blocks(document: ExtractedDocument) -> list[tuple[int, int, tuple[str, ...]]]:
    """Runs of sections under the same heading path: chunks never straddle two.

    Blocks tile the whole text (gaps and any text outside sections included), so no
    extracted character is dropped.
    """
    size = len(document.text)
    blocks: list[tuple[int, int, tuple[str, ...]]] = []
    for section in document.sections:
        if not blocks or section.heading_path != blocks[-1][2]:
            if blocks:
                start, _, path = blocks[-1]
                blocks[-1] = (start, section.start, path)
            blocks.append((0 if not blocks else section.start, size, section.heading_path))
    return blocks or [(0, size, ())]


class RecursiveChunker:
    """Chunks that follow the document's structure, each within ``max_tokens``."""

    name = "recursive"

    def __init__(self, *, max_tokens: int = 512, encoding: str = DEFAULT_ENCODING) -> None:
        self.settings = build_config(
            RecursiveConfig, self.name, {"max_tokens": max_tokens, "encoding": encoding}
        )
        check_encoding(self.settings.encoding)  # loaded on first use: a fingerprint needs only the name

    @property
    def _encoding(self) -> tiktoken.Encoding:
        return get_encoding(self.settings.encoding)

    def config(self) -> dict[str, object]:
        return describe(self.name, self.settings)

    def chunk(self, document: ExtractedDocument) -> list[Chunk]:
        tokens = TokenMap(document.text, self._encoding)
        return chunk_recursively(document, tokens, self.settings.max_tokens, PROSE_LEVELS)


def chunk_recursively(
    document: ExtractedDocument,
    tokens: TokenMap,
    budget: int,
    levels: Sequence[Cuts],
    trim: Callable[[str, int, int], tuple[int, int]] = trim_prose,
) -> list[Chunk]:
    """Never a heading-only chunk: a heading (or a run of headings) that would stand alone
    is joined to the text after it, even across heading blocks (the joined chunk takes the
    deeper block's path, which holds the heading); only a document ending in a heading keeps it."""
    splitter = Splitter(tokens, budget, levels, trim)
    by_sections = section_cuts(document.sections)
    headings = [(s.start, s.end) for s in document.sections if s.kind == "heading"]
    spans: list[Span] = []
    paths: list[tuple[str, ...]] = []
    pending: Span | None = None
    path: tuple[str, ...] = ()
    for start, end, path in heading_blocks(document):
        block = splitter.split(start, end, 0, by_sections)
        if pending is not None and block:
            block, pending = attach_heading(splitter, pending, block), None
        if block and _heading_only(tokens.text, block[0], headings):
            if len(block) == 1:
                pending = block[0]
                continue
            block = attach_heading(splitter, block[0], block[1:])
        spans.extend(block)
        paths.extend([path] * len(block))
    if pending is not None:
        spans.append(pending)
        paths.append(path)
    return assemble(document, spans, paths)


def _heading_only(text: str, span: Span, headings: list[tuple[int, int]]) -> bool:
    """Whether every non-blank character of ``span`` lies in a heading section."""
    i = bisect_right(headings, (span.start, len(text) + 1)) - 1
    pos = span.start
    while pos < span.end:
        if text[pos].isspace():
            pos += 1
            continue
        while i + 1 < len(headings) and headings[i + 1][0] <= pos:
            i += 1
        if i < 0 or not headings[i][0] <= pos < headings[i][1]:
            return False
        pos = headings[i][1]
    return True


def attach_heading(splitter: Splitter, head: Span, rest: list[Span]) -> list[Span]:
    """``head`` joined to the first of ``rest``; when the two exceed the budget, that span is
    split again with room left for the heading. A heading too long for that stays alone."""
    tokens, budget = splitter.tokens, splitter.budget
    first = rest[0]
    joined = tokens.count(head.start, first.end)
    if joined <= budget:
        return [Span(head.start, first.end, joined), *rest[1:]]
    room = budget - head.tokens - _SEAM_SLACK
    if room < max(16, budget // 4):
        return [head, *rest]
    pieces = Splitter(tokens, room, splitter.levels, splitter.trim).split(first.start, first.end)
    lead = tokens.count(head.start, pieces[0].end)
    if lead > budget:
        return [head, *rest]
    return [Span(head.start, pieces[0].end, lead), *splitter.merge([*pieces[1:], *rest[1:]])]
