"""Retrieval results and answers as they leave the index and the generators."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class IndexedPoint(_Frozen):
    """One chunk as stored in the vector index (the point's payload plus its vector)."""

    chunk_id: str
    vector: list[float]
    payload: dict[str, Any]


class SearchFilter(_Frozen):
    """What every search is restricted to. ``tenant`` is mandatory by construction:
    no caller can search across tenants.

    ``access_tags``: the chunk must carry at least one of them (or none at all when
    ``public_when_untagged`` holds — untagged chunks are readable by the whole tenant).
    """

    tenant: str
    access_tags: tuple[str, ...] | None = None
    document_ids: tuple[str, ...] | None = None
    source_uris: tuple[str, ...] | None = None
    media_types: tuple[str, ...] | None = None


class SearchHit(_Frozen):
    chunk_id: str
    score: float
    payload: dict[str, Any]

    @property
    def document_id(self) -> str:
        return str(self.payload["document_id"])


class RetrievedChunk(_Frozen):
    """A search hit with the fields callers and lineage need, rank starting at 1."""

    chunk_id: str
    document_id: str
    document_version: str
    source_uri: str
    rank: int
    score: float
    text: str
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    media_type: str | None = None


class Generation(_Frozen):
    """A generator's answer: its text, which sources (by rank) it cites, and its cost."""

    text: str
    cited_ranks: list[int] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_version: str
    no_answer: bool = False
    quotes: dict[int, str] = Field(default_factory=dict)  # rank -> the text taken from that source
