"""Retrieval results and answers as they leave the index and the generators."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: How a query is matched: the dense embedding, the lexical (BM25-style) sparse vector,
#: or both fused in the engine (reciprocal rank fusion).
RetrievalMode = Literal["dense", "sparse", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = ("dense", "sparse", "hybrid")
GroupBy = Literal["document"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class SparseVector(_Frozen):
    """A lexical vector: term ids (hashed tokens) and their weights. The engine applies IDF."""

    indices: list[int]
    values: list[float]


#: The payload field of a chunk recorded at ingest as a near-duplicate: its canonical chunk's id.
DUPLICATE_OF = "duplicate_of"


class IndexedPoint(_Frozen):
    """One chunk as stored in the vector index (the point's payload plus its vectors)."""

    chunk_id: str
    vector: list[float]
    payload: dict[str, Any]
    sparse: SparseVector | None = None


class VectorQuery(_Frozen):
    """One search as the index runs it. ``dense`` ranks by cosine, ``sparse`` by the sparse
    vector's dot product with IDF, ``hybrid`` fuses a dense and a sparse prefetch of
    ``prefetch_limit`` candidates each with reciprocal rank fusion (``rrf_k``), in the engine.
    ``with_vectors`` returns each hit's dense vector (to compute its cosine similarity).
    ``skip_duplicates`` leaves out the chunks recorded at ingest as near-duplicates of another
    (payload ``duplicate_of``): their canonical chunk stands for them and names their documents."""

    mode: RetrievalMode
    limit: int = Field(ge=1)
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    prefetch_limit: int = Field(100, ge=1)
    rrf_k: int = Field(60, ge=1)
    rrf_weights: tuple[float, float] | None = None  # (dense, sparse)
    with_vectors: bool = False
    skip_duplicates: bool = False


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

    @property
    def narrowed(self) -> bool:
        """Whether the search is restricted to some documents, sources or media types."""
        return self.document_ids is not None or self.source_uris is not None or self.media_types is not None


class SearchHit(_Frozen):
    chunk_id: str
    score: float
    payload: dict[str, Any]
    vector: list[float] | None = None  # the dense vector, when the query asked for it
    also_in: list[str] = Field(default_factory=list)  # other documents holding its passage (set by the retriever)

    @property
    def document_id(self) -> str:
        return str(self.payload["document_id"])


class RetrievedChunk(_Frozen):
    """A search hit with the fields callers and lineage need, rank starting at 1.

    ``score`` is the chunk's cosine similarity to the query in every mode (what the
    evidence threshold ``min_score`` gates, comparable across modes); ``rank_score`` is
    the score that ordered the results (cosine, BM25, RRF or the reranker's).
    ``also_in``: other documents holding the same passage, collapsed into this hit.
    """

    chunk_id: str
    document_id: str
    document_version: str
    source_uri: str
    rank: int
    score: float
    text: str
    rank_score: float | None = None
    also_in: list[str] = Field(default_factory=list)
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    media_type: str | None = None


class Passage(_Frozen):
    """A passage recorded at ingest (``ingest.dedup``): its canonical chunk, and the documents
    holding it (the canonical's and its near-duplicates', as far as the search's filter lets
    the reader see them; ordered by document id)."""

    passage_id: str  # the canonical chunk's id
    document_ids: list[str]


class Generation(_Frozen):
    """A generator's answer: its text, which sources (by rank) it cites, and its cost."""

    text: str
    cited_ranks: list[int] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_version: str
    no_answer: bool = False
    quotes: dict[int, str] = Field(default_factory=dict)  # rank -> the text taken from that source


class RerankResult(_Frozen):
    """One candidate's new relevance: its position in the list given to the reranker."""

    index: int
    score: float
