"""The index side of a retirement: copies whose canonical chunk goes become searchable.

A copy's point is left out of searches (payload ``duplicate_of``) and carries its canonical's
vector. Before the canonical's document leaves the index (a delete, an erasure, a new
version), each new canonical is embedded from its own text (its title and heading path in
front, as at ingest) and written without ``duplicate_of``; the other copies get its vector
and its id. So no point keeps a vector of a text that is gone (an erasure leaves none behind)
and a copy never vanishes from search with its canonical. The index is written first and
the ledger after, so a crash in between is repaired by running the retirement again.

Generations this pipeline no longer writes (neither its own nor one still serving queries)
are only updated in the ledger: nothing searches them until a re-index rewrites them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from ingest.context import contextual_text
from ingest.dedup.base import Promotion
from ingest.dedup.detector import NearDuplicates
from schemas.protocols import VectorIndex
from schemas.retrieval import DUPLICATE_OF, IndexedPoint

Embed = Callable[[Sequence[str]], np.ndarray]


class Retirer:
    def __init__(self, duplicates: NearDuplicates, index: VectorIndex, embed: Embed,
                 collections: Sequence[str], context_headers: bool) -> None:
        """``collections``: the generations this pipeline writes (whose points it rewrites)."""
        self._duplicates = duplicates
        self._index = index
        self._embed = embed
        self._collections = tuple(collections)
        self._context_headers = context_headers

    def retire(self, tenant: str, document_id: str, keep: Collection[str] = ()) -> int:
        """Retire the document's chunks but ``keep``; returns how many copies became canonical."""
        retirement = self._duplicates.retiring(tenant, document_id, keep)
        if not retirement.removed:
            return 0
        points: dict[str, IndexedPoint] = {}
        dropped: set[str] = set()
        for collection in sorted({o.collection for o in retirement.orphans}):
            if collection not in self._collections:
                continue
            ids = [o.chunk_id for o in retirement.orphans if o.collection == collection]
            found = {p.chunk_id: p for p in self._index.retrieve(collection, ids)}
            points.update(found)
            dropped.update(i for i in ids if i not in found)
        promotions = self._duplicates.regroup([o for o in retirement.orphans if o.chunk_id not in dropped])
        for promotion in promotions:
            if promotion.collection in self._collections:
                self._rewrite(promotion, points)
        self._duplicates.retire(retirement, promotions, dropped)
        return sum(len(p.canonical) for p in promotions)

    def _rewrite(self, promotion: Promotion, points: dict[str, IndexedPoint]) -> None:
        heads = [points[h.chunk_id] for h in promotion.canonical]
        vectors = self._embed([self._embedded_text(p) for p in heads])
        own = {p.chunk_id: vector.tolist() for p, vector in zip(heads, vectors, strict=True)}
        out = [p.model_copy(update={"vector": own[p.chunk_id],
                                    "payload": {k: v for k, v in p.payload.items() if k != DUPLICATE_OF}})
               for p in heads]
        out += [points[c].model_copy(update={"vector": own[h], "payload": {**points[c].payload, DUPLICATE_OF: h}})
                for c, h in promotion.moved.items()]
        self._index.upsert(promotion.collection, out)

    def _embedded_text(self, point: IndexedPoint) -> str:
        p = point.payload
        text = str(p.get("text", ""))
        if not self._context_headers:
            return text
        return contextual_text(p.get("title"), list(p.get("heading_path") or []), text)
