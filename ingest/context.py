"""Contextual chunk headers: what a chunk is embedded with, besides its own text.

A chunk deep in a document ("It was approved in 2019.") says little on its own; embedded
with its document's title and heading path in front, it is found by questions about
that document. The header is only what is embedded (dense and sparse); the chunk's
stored text, offsets and citations stay its own. Part of the pipeline fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Bumped when the header's form changes (it enters the pipeline fingerprint).
CONTEXT_HEADER_VERSION = 1
#: A header longer than this many words is cut (and the chunk budget leaves room for it:
#: ``HEADER_TOKENS`` cl100k tokens), so header + chunk stay within the embedding window.
HEADER_WORDS = 24
HEADER_TOKENS = 40


def contextual_text(title: str | None, heading_path: Sequence[str], text: str) -> str:
    """``title`` and the heading path (``A > B``) on a line in front of ``text``; parts the
    chunk already begins with, or that repeat the title, are left out."""
    head = " ".join(text[:400].split()).casefold()
    parts: list[str] = []
    for part in (title, *heading_path):
        clean = " ".join((part or "").split())
        if clean and clean.casefold() not in (p.casefold() for p in parts) and not _starts(head, clean):
            parts.append(clean)
    if not parts:
        return text
    words = " > ".join(parts).split()
    header = " ".join(words[:HEADER_WORDS]) + (" …" if len(words) > HEADER_WORDS else "")
    return f"{header}\n\n{text}"


def _starts(head: str, part: str) -> bool:
    folded = part.casefold()
    return head.startswith(folded) or head.lstrip("#* ").startswith(folded)
