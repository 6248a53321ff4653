"""Extracted documents and chunks: the data that flows from extractors to the index.

Sections and chunks are slotted frozen dataclasses rather than pydantic models: a
chunker creates thousands of them per megabyte and validation there buys nothing,
since they are built only by our own code from already-validated input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A contiguous span of the extracted text: a heading, a paragraph, a page, a table.

    ``start``/``end`` are character offsets into :attr:`ExtractedDocument.text`, so
    ``doc.text[s.start:s.end]`` is the section's text.
    """

    start: int
    end: int
    kind: str = "paragraph"  # heading | paragraph | table | code | page
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    """What an extractor produces: the full text plus ordered sections with offsets."""

    source_uri: str
    media_type: str
    text: str
    sections: tuple[Section, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    language: str | None = None  # programming language for source code

    def section_text(self, section: Section) -> str:
        return self.text[section.start : section.end]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document sized for the embedder.

    Invariant (tested for every chunker): ``document.text[start:end] == text`` and
    ``token_count <= budget``.
    """

    index: int
    text: str
    start: int
    end: int
    token_count: int
    page_start: int | None = None
    page_end: int | None = None
    heading_path: tuple[str, ...] = ()
    symbol: str | None = None
    context: str | None = None  # e.g. the enclosing class signature of a code chunk


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """Raw bytes of a document plus what the caller told us about it."""

    source_uri: str
    data: bytes
    tenant: str = "default"
    document_id: str | None = None
    access_tags: tuple[str, ...] = ()
    media_type: str | None = None  # caller's hint; content detection still runs
    password: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The local folder (or file) an operator named when this file was read from it
    #: (``ragline ingest ROOT``, ``ragline produce ROOT``): what ``--prune`` goes by.
    source_root: str | None = None


@dataclass(frozen=True, slots=True)
class ArchivedChunk:
    """A chunk's text as it was indexed, kept forever by chunk_id (immutable per version)
    so an answer can be replayed after its document changed or was deleted."""

    chunk_id: str
    tenant: str
    document_id: str
    document_version: str
    source_uri: str
    chunk_index: int
    text: str
    page_start: int | None = None
    page_end: int | None = None
