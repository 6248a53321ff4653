"""Query -> embeddings (dense + sparse) -> the engine's search (dense, sparse or hybrid
fused with RRF, under the tenant/ACL filter) -> rerank -> collapse duplicates ->
(optionally) group by document -> ranked chunks with their citations.

Every chunk's ``score`` is its cosine similarity to the query whatever the mode (the
evidence threshold and replays compare it), and ``rank_score`` the score that ordered
it. Duplicate passages (the same text up to case and whitespace, or word shingles at
least ``duplicate_similarity`` alike) are collapsed into their best-ranked hit, which
names the other documents holding it (``also_in``): no passage shows twice in a top-k.
Optionally (``mmr``, a λ in [0, 1]) the candidates are then re-ordered by maximal marginal
relevance over their dense vectors, fetched with them from the index: a passage much like
one already ranked moves down in favour of a different one.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from retrieval.mmr import diversify
from schemas.protocols import Embedder, Reranker, SparseEncoder, VectorIndex
from schemas.retrieval import GroupBy, RetrievalMode, RetrievedChunk, SearchFilter, SearchHit, VectorQuery


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
                 reranker: Reranker | None = None) -> None:
        self.embedder = embedder
        self.index = index
        self.collection = collection
        self.sparse = sparse
        self.config = config or RetrievalConfig()
        self.reranker = reranker

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
        (dense,) = self.embedder.embed_batch([query])
        sparse = self.sparse.encode_query(query) if used != "dense" and self.sparse is not None else None
        t1 = time.perf_counter()
        request = VectorQuery(mode=used, limit=limit, dense=list(map(float, dense)), sparse=sparse,
                              prefetch_limit=max(cfg.prefetch_limit, limit), rrf_k=cfg.rrf_k,
                              rrf_weights=cfg.rrf_weights, with_vectors=used != "dense" or lam is not None)
        hits = self.index.query(self.collection, request, flt)
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


def _chunk(hit: SearchHit, rank: int, similarity: float) -> RetrievedChunk:
    p = hit.payload
    return RetrievedChunk(
        chunk_id=hit.chunk_id, document_id=str(p["document_id"]), document_version=str(p["document_version"]),
        source_uri=str(p["source_uri"]), rank=rank, score=similarity, rank_score=hit.score,
        text=str(p.get("text", "")), page_start=p.get("page_start"), page_end=p.get("page_end"),
        heading_path=list(p.get("heading_path") or []), media_type=p.get("media_type"))


def _similarity(query: Sequence[float], hit: SearchHit) -> float:
    if hit.vector is None:
        return hit.score
    dot = sum(a * b for a, b in zip(query, hit.vector, strict=False))
    norm = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in hit.vector))
    return dot / norm if norm else 0.0


def passage_key(text: str) -> str:
    """A passage up to Unicode form, case and whitespace: what makes two hits "the same"."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _shingles(key: str) -> frozenset[str]:
    words = key.split()
    if len(words) < 3:
        return frozenset(words)
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


def collapse_duplicates(chunks: Sequence[RetrievedChunk], similarity: float = 0.9) -> list[RetrievedChunk]:
    """Keep the best-ranked copy of each passage; it names the other documents holding it."""
    kept: list[RetrievedChunk] = []
    keys: dict[str, int] = {}
    shingles: list[frozenset[str]] = []
    others: list[list[str]] = []
    for chunk in chunks:
        key = passage_key(chunk.text)
        match = keys.get(key)
        if match is None and similarity < 1.0:
            mine = _shingles(key)
            match = next((i for i, theirs in enumerate(shingles) if _jaccard(mine, theirs, similarity)), None)
        else:
            mine = frozenset()
        if match is None:
            keys[key] = len(kept)
            kept.append(chunk)
            shingles.append(mine if similarity < 1.0 else frozenset())
            others.append([])
        elif chunk.document_id != kept[match].document_id and chunk.document_id not in others[match]:
            others[match].append(chunk.document_id)
    return [c.model_copy(update={"also_in": also}) if also else c for c, also in zip(kept, others, strict=True)]


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
