"""What a PII redaction produces: the redacted text, counts per entity type (never the
values) and the offset mapping between the original and the redacted text.

Offsets downstream of redaction (sections, chunks, archived chunks, index payloads) refer
to the *redacted* text: it is the only text ragline stores. ``map_offset`` carries an
offset of the original text over; an offset inside a redacted value maps to the end of
its replacement, so the mapping never decreases and a span never splits a replacement.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RedactedSpan:
    """One replaced value: ``original[start:end]`` became ``redacted[new_start:new_end]``."""

    start: int
    end: int
    new_start: int
    new_end: int
    entity: str


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    counts: Mapping[str, int] = field(default_factory=dict)
    spans: tuple[RedactedSpan, ...] = ()  # in text order, never overlapping
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(s.start for s in self.spans))

    def map_offset(self, position: int) -> int:
        """An offset of the original text as an offset of the redacted one."""
        i = bisect_right(self._starts, position) - 1
        if i < 0:
            return position
        span = self.spans[i]
        if position == span.start:
            return span.new_start
        if position < span.end:
            return span.new_end
        return position - span.end + span.new_end

    @property
    def changed(self) -> bool:
        return bool(self.spans)
