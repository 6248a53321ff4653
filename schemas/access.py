"""The one visibility rule for tagged documents, shared by retrieval and every listing.

A reader with ``reader_tags=None`` (an admin, or a key with ``*``) reads every document
of its tenant; any other reader reads untagged documents and those sharing one of its
tags. An access tag hides a document everywhere: search, listings, answers, jobs.
"""

from __future__ import annotations

from collections.abc import Iterable


def can_read(document_tags: Iterable[str], reader_tags: tuple[str, ...] | None) -> bool:
    if reader_tags is None:
        return True
    tags = set(document_tags)
    return not tags or not tags.isdisjoint(reader_tags)
