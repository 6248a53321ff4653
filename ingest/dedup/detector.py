"""Near-duplicate chunks at ingest: find each chunk's canonical, record it, and settle the
copies of a canonical whose document goes.

A chunk is matched first against the live canonical chunks of other documents in its
scope (tenant, index generation, identical access tags; found through the LSH band keys
in the relational store, confirmed by comparing whole signatures), then against the
earlier canonical chunks of its own document. Its canonical is the one it is most alike
(ties: the smaller chunk id, or the earlier chunk). A copy's canonical is always itself
canonical: copies never chain.

When a document is deleted, forgotten or replaced by a new version, its canonical chunks
retire: each one's copies elsewhere are regrouped (in document order, the first becomes
canonical and each other one joins the first new canonical it is still a copy of, else
becomes canonical too), so no copy is left pointing at a chunk that is gone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ingest.dedup.base import DedupConfig, Match, Promotion, Sketches, StoredChunk
from ingest.dedup.minhash import MinHashSketcher
from ingest.dedup.store import SignatureStore


@dataclass(frozen=True)
class Retirement:
    """A document's rows that go, and what becomes of the copies of its canonical chunks."""

    tenant: str
    removed: tuple[StoredChunk, ...]
    orphans: tuple[StoredChunk, ...]  # copies (in other documents) of removed canonical chunks


class NearDuplicates:
    def __init__(self, store: SignatureStore, config: DedupConfig | None = None) -> None:
        self.config = config or DedupConfig()
        self.store = store
        self.sketcher = MinHashSketcher(self.config)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def sketch(self, texts: Sequence[str], collection: str, access_tags: Sequence[str]) -> Sketches:
        return self.sketcher.sketch(texts, self.sketcher.scope(collection, access_tags))

    def match(self, tenant: str, document_id: str, chunk_ids: Sequence[str], text_hashes: Sequence[str],
              sketches: Sketches) -> list[Match | None]:
        """Each chunk's canonical (None: it is canonical). Reads only: called before embedding
        (a copy then reuses its canonical's cached vector) and again at the write."""
        live = [i for i in range(len(sketches)) if not sketches.empty[i]]
        keys = {int(k) for i in live for k in sketches.bands[i]}
        stored = self.store.canonicals(tenant, sketches.scope, keys, exclude_document=document_id) if keys else {}
        similarity, threshold = self.sketcher.similarity, self.config.similarity
        earlier: dict[int, list[int]] = {}  # band key -> canonical chunks of this document so far
        found: list[Match | None] = [None] * len(sketches)
        for i in live:
            signature = sketches.signatures[i]
            best: Match | None = None
            seen: set[str] = set()
            for key in map(int, sketches.bands[i]):
                for chunk in stored.get(key, ()):
                    if chunk.chunk_id in seen:
                        continue
                    seen.add(chunk.chunk_id)
                    alike = similarity(signature, chunk.signature)
                    if alike >= threshold and (best is None or (-alike, chunk.chunk_id) < (-best.similarity,
                                                                                             best.canonical)):
                        best = Match(chunk.chunk_id, chunk.text_sha256, alike)
            if best is None:
                for j in sorted({j for key in map(int, sketches.bands[i]) for j in earlier.get(key, ())}):
                    alike = similarity(signature, sketches.signatures[j])
                    if alike >= threshold and (best is None or alike > best.similarity):
                        best = Match(chunk_ids[j], text_hashes[j], alike, in_document=True)
            found[i] = best
            if best is None:
                for key in map(int, sketches.bands[i]):
                    earlier.setdefault(key, []).append(i)
        return found

    def record(self, tenant: str, collection: str, document_id: str, version: str, chunk_ids: Sequence[str],
               text_hashes: Sequence[str], sketches: Sketches, matches: Sequence[Match | None]) -> None:
        """Write the document's rows (its canonical chunks' band keys too), replacing rows of
        the same chunk ids (a document re-indexed at the same version)."""
        rows = [StoredChunk(chunk_id=chunk_ids[i], collection=collection, document_id=document_id,
                            document_version=version, chunk_index=i, scope=sketches.scope,
                            signature=sketches.signatures[i], text_sha256=text_hashes[i],
                            duplicate_of=m.canonical if (m := matches[i]) else None)
                for i in range(len(sketches)) if not sketches.empty[i]]
        old = self.store.rows(tenant, chunk_ids=[r.chunk_id for r in rows])
        self.store.write(tenant, remove_bands=self._bands(old), put=rows,
                         add_bands=self._bands([r for r in rows if r.duplicate_of is None]))

    def retiring(self, tenant: str, document_id: str, keep: Collection[str] = ()) -> Retirement:
        """The document's rows but ``keep`` (its chunks being written now), and the copies of
        its canonical ones in other documents. Reads only."""
        removed = tuple(r for r in self.store.rows(tenant, document_id=document_id) if r.chunk_id not in keep)
        gone = {r.chunk_id for r in removed}
        canonical = [r.chunk_id for r in removed if r.duplicate_of is None]
        orphans = tuple(r for r in self.store.copies_of(tenant, canonical) if r.chunk_id not in gone)
        return Retirement(tenant, removed, orphans)

    def regroup(self, orphans: Sequence[StoredChunk]) -> list[Promotion]:
        """New canonical chunks for the copies of each retired canonical chunk."""
        groups: dict[str, list[StoredChunk]] = {}
        for chunk in orphans:
            groups.setdefault(chunk.duplicate_of or "", []).append(chunk)
        promotions = []
        for _, members in sorted(groups.items()):
            members.sort(key=lambda c: (c.document_id, c.document_version, c.chunk_index, c.chunk_id))
            heads: list[StoredChunk] = []
            moved: dict[str, str] = {}
            for chunk in members:
                alike = [(self.sketcher.similarity(chunk.signature, h.signature), h.chunk_id) for h in heads]
                best = max(alike, key=lambda a: a[0], default=None)
                if best is not None and best[0] >= self.config.similarity:
                    moved[chunk.chunk_id] = best[1]
                else:
                    heads.append(replace(chunk, duplicate_of=None))
            promotions.append(Promotion(members[0].collection, tuple(heads), moved))
        return promotions

    def retire(self, retirement: Retirement, promotions: Sequence[Promotion], dropped: Collection[str] = ()) -> None:
        """Commit a retirement: the removed rows and their bands go, the promoted chunks are
        canonical (with band keys), moved copies name their new canonical. ``dropped``: orphans
        left out of ``promotions`` because their point is not in the index (rows left behind by
        a write that never finished): their rows go too."""
        stale = [o for o in retirement.orphans if o.chunk_id in dropped]
        heads = [h for p in promotions for h in p.canonical]
        moved: dict[str, str | None] = {h.chunk_id: None for h in heads}
        moved.update({c: h for p in promotions for c, h in p.moved.items()})
        self.store.write(retirement.tenant, remove=[r.chunk_id for r in (*retirement.removed, *stale)],
                         remove_bands=self._bands([r for r in retirement.removed if r.duplicate_of is None]),
                         add_bands=self._bands(heads), moved=moved)

    def _bands(self, rows: Sequence[StoredChunk]) -> list[tuple[int, str]]:
        """(band key, chunk id) of canonical rows, recomputed from their scope and signature."""
        out: list[tuple[int, str]] = []
        for row in rows:
            if row.duplicate_of is None:
                keys = self.sketcher.band_keys(row.scope, row.signature.reshape(1, -1))[0]
                out.extend((int(k), row.chunk_id) for k in keys)
        return out
