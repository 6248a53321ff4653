"""Query -> embeddings (dense + sparse) -> the engine's search (dense, sparse or hybrid
fused with RRF, under the tenant/ACL filter) -> rerank -> collapse duplicates ->
(optionally) group by document -> ranked chunks with their citations.

Every chunk's ``score`` is its cosine similarity to the query whatever the mode (the
evidence threshold and replays compare it), and ``rank_score`` the score that ordered
it. Duplicate passages (the same text up to case and whitespace, or word shingles at
least ``duplicate_similarity`` alike) are collapsed into their best-ranked hit, which
names the other documents holding it (``also_in``): no passage shows twice in a top-k.
Near-duplicates recorded at ingest (``PassageIndex``) are not searched at all unless the
filter narrows the search; their canonical chunk's hit names their documents, and any hits
of one recorded passage are folded into the best-ranked one whatever their text.
Optionally (``mmr``, a λ in [0, 1]) the candidates are then re-ordered by maximal marginal
relevance over their dense vectors, fetched with them from the index: a passage much like
one already ranked moves down in favour of a different one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrieval.mmr import diversify
from schemas.passages import passage_key as passage_key  # one definition of "the same passage", re-exported
from schemas.passages import word_shingles
from schemas.protocols import Embedder, PassageIndex, QueryEmbedder, Reranker, SparseEncoder, VectorIndex
from schemas.retrieval import (
    GroupBy,
    Passage,
    RetrievalMode,
    RetrievedChunk,
    SearchFilter,
    SearchHit,
    VectorQuery,
)


@dataclass(frozen=True)
class RetrievalTimings:
    embed_ms: float
    search_ms: float
    rerank_ms: float = 0.0


@dataclass(frozen=True)
class RetrievalConfig:
    """How queries are run (``RAGLINE_RETRIEVAL__*``); what shaped an answer is recorded in lineage."""

    mode: RetrievalMode = "hybrid"
    rrf_k: int = 60
    rrf_weights: tuple[float, float] | None = None  # (dense, sparse)
    prefetch_limit: int = 100  # candidates per side before fusion (at least the fetch size)
    collapse_duplicates: bool = True
    duplicate_similarity: float = 0.9  # word-shingle Jaccard at which two passages are one
    rerank_top_n: int = 50
    group_size: int = 3  # chunks per document with group_by="document"
    mmr: float | None = None  # MMR λ when a request names none; None: off
    mmr_candidates: int = 50  # candidates MMR chooses from (at least the fetch size)


@dataclass(frozen=True)
class Retrieval:
    chunks: list[RetrievedChunk]
    timings: RetrievalTimings
    params: dict[str, Any] = field(default_factory=dict)  # mode, fusion, reranker...: lineage records them


class Retriever:
    def __init__(self, embedder: Embedder, index: VectorIndex, collection: str,
                 sparse: SparseEncoder | None = None, config: RetrievalConfig | None = None,
                 reranker: Reranker | None = None, passages: PassageIndex | None = None) -> None:
        """``passages``: the near-duplicates recorded at ingest (copies are then not searched,
        and every document holding a hit's passage is named in its ``also_in``)."""
        self.embedder = embedder
        self.index = index
        self.collection = collection
        self.sparse = sparse
        self.config = config or RetrievalConfig()
        self.reranker = reranker
        self.passages = passages

    def retrieve(self, query: str, k: int, flt: SearchFilter) -> tuple[list[RetrievedChunk], RetrievalTimings]:
        result = self.run(query, k, flt)
        return result.chunks, result.timings

    def effective_mode(self, requested: RetrievalMode | None) -> RetrievalMode:
        """The mode asked for, or dense on a generation built before sparse vectors."""
        mode = requested or self.config.mode
        if mode != "dense" and (self.sparse is None or not self.index.has_sparse(self.collection)):
            return "dense"
        return mode

    def run(self, query: str, k: int, flt: SearchFilter, *, mode: RetrievalMode | None = None,
            group_by: GroupBy | None = None, rerank: bool = True, mmr: float | None = None) -> Retrieval:
        """``mmr``: the MMR λ of this request (None: the configured default, off unless set)."""
        cfg = self.config
        used = self.effective_mode(mode)
        reranker = self.reranker if rerank else None
        lam = mmr if mmr is not None else cfg.mmr
        wanted = k * (cfg.group_size if group_by else 1)
        limit = wanted + (max(10, wanted // 2) if cfg.collapse_duplicates or group_by else 0)
        if reranker is not None:
            limit = max(limit, cfg.rerank_top_n)
        if lam is not None:
            limit = max(limit, cfg.mmr_candidates)
        t0 = time.perf_counter()
        dense = query_vector(self.embedder, query)
        sparse = self.sparse.encode_query(query) if used != "dense" and self.sparse is not None else None
        t1 = time.perf_counter()
        request = VectorQuery(mode=used, limit=limit, dense=list(map(float, dense)), sparse=sparse,
                              prefetch_limit=max(cfg.prefetch_limit, limit), rrf_k=cfg.rrf_k,
                              rrf_weights=cfg.rrf_weights, with_vectors=used != "dense" or lam is not None)
        hits = self._search(request, flt)
        t2 = time.perf_counter()
        chunks = self._order(query, [_chunk(h, rank, _similarity(dense, h) if used != "dense" else h.score)
                                     for rank, h in enumerate(hits, start=1)],
                             reranker, lam, {h.chunk_id: h.vector for h in hits if h.vector is not None})
        t3 = time.perf_counter()
        chunks = group_by_document(chunks, k, cfg.group_size) if group_by else chunks[:k]
        ranked = [c.model_copy(update={"rank": rank}) for rank, c in enumerate(chunks, start=1)]
        return Retrieval(ranked, RetrievalTimings((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000),
                         self._params(mode or cfg.mode, used, limit, group_by, reranker, lam))

    def _order(self, query: str, chunks: list[RetrievedChunk], reranker: Reranker | None, lam: float | None,
               vectors: dict[str, list[float]]) -> list[RetrievedChunk]:
        """Collapse duplicates, rerank the head, then MMR over what the ranking's scores order
        alike: the reranked head when a reranker ran (its tail keeps the fused scores), else all."""
        cfg = self.config
        if cfg.collapse_duplicates:
            chunks = collapse_duplicates(chunks, cfg.duplicate_similarity)
        if reranker is not None and chunks:
            head, tail = chunks[: cfg.rerank_top_n], chunks[cfg.rerank_top_n :]
            results = reranker.rerank(query, [c.text for c in head])
            chunks = [head[r.index].model_copy(update={"rank_score": r.score}) for r in results] + tail
        if lam is not None:
            pool = cfg.rerank_top_n if reranker is not None else len(chunks)
            chunks = diversify(chunks[:pool], vectors, lam) + chunks[pool:]
        return chunks

    def _search(self, request: VectorQuery, flt: SearchFilter) -> list[SearchHit]:
        """The engine's hits with the copies recorded at ingest folded in. Copies are left out
        of the search unless the filter narrows it (to documents, sources or media types: a
        copy may then be the only one in scope)."""
        if self.passages is None:
            return self.index.query(self.collection, request, flt)
        if not flt.narrowed:
            request = request.model_copy(update={"skip_duplicates": True})
        hits = self.index.query(self.collection, request, flt)
        return fold_copies(hits, self.passages.passages(flt, [h.chunk_id for h in hits])) if hits else hits

    def _params(self, requested: RetrievalMode, used: RetrievalMode, limit: int, group_by: GroupBy | None,
                reranker: Reranker | None, lam: float | None) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {"mode": used, "candidates": limit,
                                  "reranker": reranker.model_version if reranker is not None else "none",
                                  "collapse_duplicates": cfg.collapse_duplicates, "group_by": group_by}
        if requested != used:
            params["requested_mode"] = requested  # the generation holds no sparse vectors
        if used != "dense" and self.sparse is not None:
            params["sparse"] = self.sparse.version
        if used == "hybrid":
            params["fusion"] = {"method": "rrf", "k": cfg.rrf_k, "prefetch_limit": max(cfg.prefetch_limit, limit),
                                "weights": list(cfg.rrf_weights) if cfg.rrf_weights else None}
        if reranker is not None:
            params["rerank_top_n"] = cfg.rerank_top_n
        if lam is not None:
            params["mmr"] = lam  # only when on: answers recorded without MMR keep their shape
        return params


def query_vector(embedder: Embedder, text: str) -> Sequence[float]:
    """A query's dense vector: an asymmetric model (E5, BGE) embeds queries its own way."""
    return embedder.embed_query(text) if isinstance(embedder, QueryEmbedder) else embedder.embed_batch([text])[0]


def _chunk(hit: SearchHit, rank: int, similarity: float) -> RetrievedChunk:
    p = hit.payload
    return RetrievedChunk(
        chunk_id=hit.chunk_id, document_id=str(p["document_id"]), document_version=str(p["document_version"]),
        source_uri=str(p["source_uri"]), rank=rank, score=similarity, rank_score=hit.score,
        text=str(p.get("text", "")), page_start=p.get("page_start"), page_end=p.get("page_end"),
        heading_path=list(p.get("heading_path") or []), media_type=p.get("media_type"), also_in=list(hit.also_in))


def _similarity(query: Sequence[float], hit: SearchHit) -> float:
    if hit.vector is None:
        return hit.score
    dot = sum(a * b for a, b in zip(query, hit.vector, strict=False))
    norm = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in hit.vector))
    return dot / norm if norm else 0.0


def fold_copies(hits: Sequence[SearchHit], passages: Mapping[str, Passage]) -> list[SearchHit]:
    """Hits of one passage recorded at ingest as one: the best-ranked stays and names every
    other document holding the passage (``passages``: chunk id -> its passage, its holders)."""
    kept: list[SearchHit] = []
    at: dict[str, int] = {}
    for hit in hits:
        passage = passages.get(hit.chunk_id)
        if passage is None:
            kept.append(hit)
            continue
        i = at.get(passage.passage_id)
        if i is None:
            at[passage.passage_id] = len(kept)
            kept.append(hit.model_copy(update={"also_in": [d for d in passage.document_ids if d != hit.document_id]}))
        elif hit.document_id != kept[i].document_id and hit.document_id not in kept[i].also_in:
            kept[i] = kept[i].model_copy(update={"also_in": [*kept[i].also_in, hit.document_id]})
    return kept


def collapse_duplicates(chunks: Sequence[RetrievedChunk], similarity: float = 0.9) -> list[RetrievedChunk]:
    """Keep the best-ranked copy of each passage; it names the other documents holding it
    (those it named already, then those of the copies collapsed into it)."""
    kept: list[RetrievedChunk] = []
    keys: dict[str, int] = {}
    shingles: list[frozenset[str]] = []
    others: list[list[str]] = []
    for chunk in chunks:
        key = passage_key(chunk.text)
        match = keys.get(key)
        if match is None and similarity < 1.0:
            mine = word_shingles(key)
            match = next((i for i, theirs in enumerate(shingles) if _jaccard(mine, theirs, similarity)), None)
        else:
            mine = frozenset()
        if match is None:
            keys[key] = len(kept)
            kept.append(chunk)
            shingles.append(mine if similarity < 1.0 else frozenset())
            others.append(list(chunk.also_in))
        else:
            for document_id in (chunk.document_id, *chunk.also_in):
                if document_id != kept[match].document_id and document_id not in others[match]:
                    others[match].append(document_id)
    return [c.model_copy(update={"also_in": also}) if also != c.also_in else c
            for c, also in zip(kept, others, strict=True)]


def _jaccard(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    """Whether the Jaccard similarity reaches ``threshold`` (sizes too far apart cannot: J <= min/max)."""
    if not a or not b or min(len(a), len(b)) < threshold * max(len(a), len(b)):
        return False
    return len(a & b) >= threshold * len(a | b)


def group_by_document(chunks: Sequence[RetrievedChunk], k: int, group_size: int) -> list[RetrievedChunk]:
    """k documents in order of their best chunk, each with up to ``group_size`` of its chunks."""
    groups: dict[str, list[RetrievedChunk]] = {}
    for chunk in chunks:
        group = groups.get(chunk.document_id)
        if group is None:
            if len(groups) == k:
                continue
            group = groups[chunk.document_id] = []
        if len(group) < group_size:
            group.append(chunk)
    return [c for group in groups.values() for c in group]
