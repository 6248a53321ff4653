"""Characters no store accepts are removed once, right after extraction.

NUL is legal in a text file and turns up in PDF text layers, but PostgreSQL refuses it
in text columns and it carries no meaning for search; stripping it here (and shifting
section offsets to match) keeps every later stage's offsets true.
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any

from schemas.documents import ExtractedDocument

NUL = "\x00"


def without_nul(document: ExtractedDocument) -> ExtractedDocument:
    text_has_nul = NUL in document.text
    if not text_has_nul and not _has_nul(document.metadata):
        return document
    sections = document.sections
    if text_has_nul:
        removed = [i for i, ch in enumerate(document.text) if ch == NUL]

        def shift(offset: int) -> int:
            return offset - bisect.bisect_left(removed, offset)

        sections = tuple(replace(s, start=shift(s.start), end=shift(s.end),
                                 heading_path=tuple(h.replace(NUL, "") for h in s.heading_path))
                         for s in document.sections)
        sections = tuple(s for s in sections if s.end > s.start)
    return replace(document, text=document.text.replace(NUL, ""), sections=sections,
                   metadata=clean_value(document.metadata))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def clean_value(value: Any) -> Any:
    """``value`` (a JSON-like tree) with NUL removed from every string in it."""
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, dict):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value
