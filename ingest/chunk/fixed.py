"""Fixed windows of N tokens with M tokens of overlap.

Each document is tokenized once; windows are cut on the token boundaries of that pass,
preferably at letter boundaries where token counts are additive (see ``tokens.py``),
so a window's exact count is a subtraction instead of a re-encode. Nothing is decoded:
chunk text is always the slice of ``doc.text`` between the window's char offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ingest.chunk.base import FixedConfig, Span, assemble, build_config, describe
from ingest.chunk.tokens import DEFAULT_ENCODING, TokenMap, check_encoding, get_encoding, take_tokens
from schemas.documents import Chunk, ExtractedDocument

if TYPE_CHECKING:
    import tiktoken

_NON_SPACE = re.compile(r"\S")
_SCAN_LIMIT = 64  # token boundaries to look back for an additive cut


class FixedTokenChunker:
    """Windows of ``max_tokens`` tokens, each starting about ``overlap`` tokens before
    the previous one ended."""

    name = "fixed"

    def __init__(
        self, *, max_tokens: int = 512, overlap: int = 50, encoding: str = DEFAULT_ENCODING
    ) -> None:
        self.settings = build_config(
            FixedConfig,
            self.name,
            {"max_tokens": max_tokens, "overlap": overlap, "encoding": encoding},
        )
        check_encoding(self.settings.encoding)  # loaded on first use: a fingerprint needs only the name

    @property
    def _encoding(self) -> tiktoken.Encoding:
        return get_encoding(self.settings.encoding)

    def config(self) -> dict[str, object]:
        return describe(self.name, self.settings)

    def chunk(self, document: ExtractedDocument) -> list[Chunk]:
        tokens = TokenMap(document.text, self._encoding)
        windows = fixed_windows(tokens, self.settings.max_tokens, self.settings.overlap)
        return assemble(document, windows)


def fixed_windows(tokens: TokenMap, budget: int, overlap: int) -> Iterator[Span]:
    """Overlapping windows over the whole text, skipping whitespace-only ones.

    The usual window runs from one additive cut to another, so its exact count is the
    difference of two token indices; windows with no such cut nearby are counted by
    :func:`take_tokens` instead.
    """
    text = tokens.text
    size = len(text)
    start = 0
    start_token: int | None = 0  # None when start is not an additive cut
    while start < size:
        end, end_token = _additive_end(tokens, start, start_token, budget)
        if end_token is not None and start_token is not None:
            count = end_token - start_token
        else:
            end, count = take_tokens(tokens, start, size, budget)
            end_token = None
        if _NON_SPACE.search(text, start, end):
            yield Span(start, end, count)
        if end >= size:
            return
        start, start_token = _next_start(tokens, start, end, end_token, overlap)


def _additive_end(
    tokens: TokenMap, start: int, start_token: int | None, budget: int
) -> tuple[int, int | None]:
    """The last additive cut at most ``budget`` tokens after an additive ``start``."""
    if start_token is None:
        return start, None
    target = start_token + budget
    if target >= tokens.n_tokens:
        return len(tokens.text), tokens.n_tokens
    floor = start_token + budget // 2  # below that, a ragged cut makes fuller windows
    return _scan_back(tokens, target, max(floor, start_token + 1))


def _scan_back(tokens: TokenMap, token: int, floor: int) -> tuple[int, int | None]:
    """The additive cut at or before token boundary ``token`` (not before ``floor``)."""
    for k in range(token, max(floor, token - _SCAN_LIMIT) - 1, -1):
        pos = tokens.position(k)
        if pos is not None and tokens.is_additive_cut(pos):
            return pos, k
    return 0, None


def _next_start(
    tokens: TokenMap, start: int, end: int, end_token: int | None, overlap: int
) -> tuple[int, int | None]:
    """About ``overlap`` tokens before ``end``, on an additive cut when one is close."""
    if overlap == 0:
        return end, end_token
    end_token = tokens.token_index(end) if end_token is None else end_token
    want = end_token - overlap
    pos, k = _scan_back(tokens, want, want - overlap)
    if k is not None and pos > start:
        return pos, k
    fallback = tokens.cut_tokens_after(0, want) if want > 0 else 0
    return (fallback, None) if fallback > start else (end, None)
