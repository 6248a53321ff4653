"""Query -> embedding -> filtered vector search -> ranked chunks with their citations."""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas.protocols import Embedder, VectorIndex
from schemas.retrieval import RetrievedChunk, SearchFilter


@dataclass(frozen=True)
class RetrievalTimings:
    embed_ms: float
    search_ms: float


class Retriever:
    def __init__(self, embedder: Embedder, index: VectorIndex, collection: str) -> None:
        self.embedder = embedder
        self.index = index
        self.collection = collection

    def retrieve(self, query: str, k: int, flt: SearchFilter) -> tuple[list[RetrievedChunk], RetrievalTimings]:
        t0 = time.perf_counter()
        (vector,) = self.embedder.embed_batch([query])
        t1 = time.perf_counter()
        hits = self.index.search(self.collection, vector, k, flt)
        t2 = time.perf_counter()
        chunks = [
            RetrievedChunk(
                chunk_id=h.chunk_id, document_id=str(h.payload["document_id"]),
                document_version=str(h.payload["document_version"]), source_uri=str(h.payload["source_uri"]),
                rank=rank, score=h.score, text=str(h.payload.get("text", "")),
                page_start=h.payload.get("page_start"), page_end=h.payload.get("page_end"),
                heading_path=list(h.payload.get("heading_path") or []), media_type=h.payload.get("media_type"),
            )
            for rank, h in enumerate(hits, start=1)
        ]
        return chunks, RetrievalTimings((t1 - t0) * 1000, (t2 - t1) * 1000)
