"""Redaction of an extracted document: its text, its sections' offsets and heading paths,
and the string values of its metadata (title, author, …), before it is chunked.

Offsets after this stage refer to the redacted text (``Redaction.map_offset``): sections
keep covering the same content, a section that held nothing but a redacted value keeps
its replacement, and chunk offsets index the redacted text the chunk archive holds.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from schemas.documents import ExtractedDocument, Section
from schemas.protocols import Redactor


def redact_document(redactor: Redactor, document: ExtractedDocument,
                    tenant: str) -> tuple[ExtractedDocument, dict[str, int]]:
    """The document as ragline may store it, and how many values of each type were replaced
    in its text and metadata (heading paths repeat the text's headings and are not counted)."""
    redaction = redactor.redact(document.text, tenant)
    counts: Counter[str] = Counter(redaction.counts)
    headings: dict[tuple[str, ...], tuple[str, ...]] = {}

    def heading_path(path: tuple[str, ...]) -> tuple[str, ...]:
        if path not in headings:
            headings[path] = tuple(redactor.redact(h, tenant).text for h in path)
        return headings[path]

    sections = tuple(
        Section(start, end, s.kind, s.page, heading_path(s.heading_path))
        for s in document.sections
        if (start := redaction.map_offset(s.start)) < (end := redaction.map_offset(s.end)))
    metadata = redact_value(redactor, document.metadata, tenant, counts)
    if not redaction.changed and sections == document.sections and metadata == document.metadata:
        return document, dict(counts)
    return dataclasses.replace(document, text=redaction.text, sections=sections, metadata=metadata), dict(counts)


def redact_value(redactor: Redactor, value: Any, tenant: str, counts: Counter[str]) -> Any:
    """``value`` with every string in it redacted (dict keys are names and stay)."""
    if isinstance(value, str):
        redaction = redactor.redact(value, tenant)
        counts.update(redaction.counts)
        return redaction.text
    if isinstance(value, dict):
        return {k: redact_value(redactor, v, tenant, counts) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(redactor, v, tenant, counts) for v in value)
    return value
