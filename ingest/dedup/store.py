"""The near-duplicate ledger in the relational store (``chunk_signatures``, ``chunk_bands``).

Why a table and not an in-memory LSH index (rensa's ``RMinHashLSH``, datasketch's
``MinHashLSH``) rebuilt from stored signatures: an in-memory index holds ~1.3 KB per chunk
(rensa, 16 bands, measured over 200k signatures: 1.3 GB per million chunks in every
process), must be reloaded after each restart, and goes stale when another process (an API
replica, a Kafka worker on the same PostgreSQL) indexes or deletes a document. Here the band
keys are indexed rows: each process sees every commit at once, a restart costs nothing, and
a tenant's lookup is a ``WHERE tenant = ...`` on a primary key, like every other table.

Liveness: a row counts only while the registry holds its document as indexed at the row's
version, so rows left by a write that never finished (a crash between steps) are ignored.
This module also serves retrieval (``schemas.protocols.PassageIndex``): which passage a hit
belongs to and which documents hold it, under the reader's visibility rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, delete, select, update

from ingest.dedup.base import StoredChunk
from ingest.dedup.minhash import MinHashSketcher
from ingest.registry import visible_to
from ingest.tables import chunk_bands, chunk_signatures, documents
from schemas.retrieval import Passage, SearchFilter

_IN_CHUNK = 400  # ids per IN (...) list: under SQLite's bound-parameter limit with room for the rest
#: Documents named per passage at most (``also_in``): a boilerplate paragraph held by
#: thousands of documents must not make every answer that cites it megabytes long.
MAX_HOLDERS = 100

_S, _B, _D = chunk_signatures.c, chunk_bands.c, documents.c
_ROW = (_S.chunk_id, _S.collection, _S.document_id, _S.document_version, _S.chunk_index, _S.scope, _S.signature,
        _S.text_sha256, _S.duplicate_of)


def _parts(values: Iterable[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _stored(row: Any) -> StoredChunk:
    return StoredChunk(chunk_id=row.chunk_id, collection=row.collection, document_id=row.document_id,
                       document_version=row.document_version, chunk_index=row.chunk_index, scope=row.scope,
                       signature=MinHashSketcher.from_bytes(row.signature), text_sha256=row.text_sha256,
                       duplicate_of=row.duplicate_of)


class SignatureStore:
    def __init__(self, engine: Engine, max_holders: int = MAX_HOLDERS) -> None:
        self._engine = engine
        self._max_holders = max_holders

    # -- ingest ---------------------------------------------------------------------------

    def canonicals(self, tenant: str, scope: str, band_keys: Iterable[int],
                   exclude_document: str) -> dict[int, list[StoredChunk]]:
        """Live canonical chunks of ``scope`` sharing a band key, by key (``exclude_document``'s
        own rows are left out: its other versions are about to be replaced)."""
        banded: dict[str, list[int]] = {}
        with self._engine.connect() as conn:
            for part in _parts(sorted(set(band_keys))):
                for band, chunk_id in conn.execute(select(_B.band, _B.chunk_id).where(_B.tenant == tenant,
                                                                                    _B.band.in_(part))):
                    banded.setdefault(chunk_id, []).append(int(band))
            rows = [r for r in _rows(conn, tenant, banded) if r.scope == scope and r.duplicate_of is None
                    and r.document_id != exclude_document]
            live = _live(conn, tenant, {r.document_id for r in rows})
        found: dict[int, list[StoredChunk]] = {}
        for row in rows:
            if live.get(row.document_id) == row.document_version:
                for band in banded[row.chunk_id]:
                    found.setdefault(band, []).append(row)
        return found

    def rows(self, tenant: str, *, document_id: str | None = None,
             chunk_ids: Iterable[str] | None = None) -> list[StoredChunk]:
        """A document's rows (every version and generation), or these chunks' rows."""
        with self._engine.connect() as conn:
            if document_id is not None:
                query = select(*_ROW).where(_S.tenant == tenant, _S.document_id == document_id)
                return [_stored(r) for r in conn.execute(query)]
            return _rows(conn, tenant, chunk_ids or ())

    def copies_of(self, tenant: str, canonical_ids: Iterable[str]) -> list[StoredChunk]:
        """The rows recorded as copies of these chunks (live or not)."""
        query = select(*_ROW).where(_S.tenant == tenant)
        with self._engine.connect() as conn:
            return [_stored(r) for part in _parts(sorted(set(canonical_ids)))
                    for r in conn.execute(query.where(_S.duplicate_of.in_(part)))]

    def write(self, tenant: str, *, remove: Iterable[str] = (), remove_bands: Iterable[tuple[int, str]] = (),
              put: Sequence[StoredChunk] = (), add_bands: Iterable[tuple[int, str]] = (),
              moved: Mapping[str, str | None] | None = None) -> None:
        """One transaction: drop rows (``remove``) and band rows (``(band, chunk_id)``), write
        rows (``put`` replaces rows of the same ids), add band rows, and point copies at a new
        canonical (``moved``: chunk id -> canonical id, None: it is canonical now)."""
        gone = sorted({*remove, *(c.chunk_id for c in put)})
        unbanded = [{"b": band, "c": chunk_id} for band, chunk_id in remove_bands]
        banded = [{"band": band, "tenant": tenant, "chunk_id": chunk_id} for band, chunk_id in add_bands]
        with self._engine.begin() as conn:
            if unbanded:
                conn.execute(delete(chunk_bands).where(_B.band == bindparam("b"), _B.tenant == tenant,
                                                       _B.chunk_id == bindparam("c")), unbanded)
            for part in _parts(gone):
                conn.execute(delete(chunk_signatures).where(_S.tenant == tenant, _S.chunk_id.in_(part)))
            if put:
                conn.execute(chunk_signatures.insert(), [{
                    "tenant": tenant, "chunk_id": c.chunk_id, "collection": c.collection,
                    "document_id": c.document_id, "document_version": c.document_version,
                    "chunk_index": c.chunk_index, "scope": c.scope,
                    "signature": MinHashSketcher.to_bytes(c.signature), "text_sha256": c.text_sha256,
                    "duplicate_of": c.duplicate_of} for c in put])
            if banded:
                conn.execute(chunk_bands.insert(), banded)
            if moved:
                conn.execute(update(chunk_signatures).where(_S.tenant == tenant, _S.chunk_id == bindparam("c"))
                             .values(duplicate_of=bindparam("d")),
                             [{"c": chunk_id, "d": canonical} for chunk_id, canonical in moved.items()])

    # -- retrieval (PassageIndex) ----------------------------------------------------------

    def passages(self, flt: SearchFilter, chunk_ids: Sequence[str]) -> dict[str, Passage]:
        """For each hit recorded in the ledger: its passage (the canonical chunk's id) and the
        live documents holding that passage which ``flt`` lets its reader see (tenant, access
        tags, and the documents, sources or media types it narrows to), ``MAX_HOLDERS`` at most
        (the first by document id). Every lookup is on a primary key or an index (joined here,
        so that no planner can start from the wrong table)."""
        if not chunk_ids:
            return {}
        tenant = flt.tenant
        with self._engine.connect() as conn:
            passage_of = {r.chunk_id: r.duplicate_of or r.chunk_id for r in _rows(conn, tenant, chunk_ids)}
            passages = sorted(set(passage_of.values()))
            members = [(r.chunk_id, r.document_id, r.document_version) for r in _rows(conn, tenant, passages)]
            members += [(r.duplicate_of, r.document_id, r.document_version) for part in _parts(passages)
                        for r in conn.execute(select(_S.duplicate_of, _S.document_id, _S.document_version)
                                              .where(_S.tenant == tenant, _S.duplicate_of.in_(part)))]
            live = _live(conn, tenant, {doc for _, doc, _ in members}, _narrowing(flt))
        holders: dict[str, set[str]] = {}
        for passage, document_id, version in members:
            if live.get(document_id) == version:
                holders.setdefault(passage, set()).add(document_id)
        named = {p: sorted(docs)[: self._max_holders] for p, docs in holders.items()}
        return {chunk_id: Passage(passage_id=passage, document_ids=named.get(passage, []))
                for chunk_id, passage in passage_of.items()}


def _rows(conn: Connection, tenant: str, chunk_ids: Iterable[str]) -> list[StoredChunk]:
    query = select(*_ROW).where(_S.tenant == tenant)
    return [_stored(r) for part in _parts(sorted(set(chunk_ids))) for r in conn.execute(
        query.where(_S.chunk_id.in_(part)))]


def _live(conn: Connection, tenant: str, document_ids: Iterable[str],
          conds: Sequence[ColumnElement[bool]] = ()) -> dict[str, str]:
    """Indexed documents among ``document_ids`` (meeting ``conds``): id -> indexed version."""
    query = select(_D.document_id, _D.version).where(_D.tenant == tenant, _D.status == "indexed", *conds)
    return {d: v for part in _parts(sorted(set(document_ids)))
            for d, v in conn.execute(query.where(_D.document_id.in_(part)))}


def _narrowing(flt: SearchFilter) -> list[ColumnElement[bool]]:
    """The filter's rules on documents: the reader's visibility and what it narrows to."""
    conds = [visible_to(flt.access_tags)]
    for column, values in ((_D.document_id, flt.document_ids), (_D.source_uri, flt.source_uris),
                           (_D.media_type, flt.media_types)):
        if values is not None:
            conds.append(column.in_(list(values)))
    return conds
