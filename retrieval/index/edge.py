"""Qdrant Edge (``qdrant-edge-py``): the embedded default, an HNSW index on local disk.

One shard directory per collection under the index root. Edge builds HNSW only in
``optimize()``, which holds the GIL for the whole build, so this adapter never
optimizes on its own: the caller decides when (see ``services`` maintenance policy).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from retrieval.index.base import (
    DENSE_VECTOR,
    KEYWORD_FIELDS,
    SPARSE_VECTOR,
    VERSION_FIELDS,
    HnswConfig,
    dense_of,
    sparse_of,
    tally_versions,
)
from schemas.errors import VectorIndexError
from schemas.retrieval import DUPLICATE_OF, IndexedPoint, SearchFilter, SearchHit, SparseVector, VectorQuery

_UPSERT_BATCH = 512


class QdrantEdgeIndex:
    def __init__(self, root: Path, hnsw: HnswConfig | None = None) -> None:
        self._root = root
        self._hnsw = hnsw or HnswConfig()
        self._shards: dict[str, Any] = {}
        self._sparse: dict[str, bool] = {}
        self._lock = threading.Lock()

    def ensure_collection(self, name: str, dimensions: int) -> None:
        self._shard(name, dimensions)

    def _shard(self, name: str, dimensions: int | None = None) -> Any:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._lock:
            if name in self._shards:
                return self._shards[name]
            path = self._root / name
            try:
                if (path / "segments").exists() or (path / "edge_config.json").exists():
                    shard = qe.EdgeShard.load(str(path))
                elif dimensions is None:
                    raise VectorIndexError(f"collection {name} does not exist under {self._root}")
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    shard = qe.EdgeShard.create(str(path), self._config(dimensions))
                    for key in KEYWORD_FIELDS:
                        shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
            except VectorIndexError:
                raise
            except Exception as exc:  # noqa: BLE001 - qdrant_edge raises plain exceptions
                raise VectorIndexError(f"cannot open Qdrant Edge collection {path}: {exc}") from exc
            self._shards[name] = shard
            return shard

    def _config(self, dimensions: int) -> Any:
        h = self._hnsw
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine),
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=qe.HnswIndexConfig(m=h.m, ef_construct=h.ef_construct,
                                           full_scan_threshold=h.full_scan_threshold_kb),
        )

    def has_sparse(self, collection: str) -> bool:
        """From the shard's stored config: generations created before sparse vectors have none."""
        known = self._sparse.get(collection)
        if known is None:
            self._shard(collection)
            try:
                stored = json.loads((self._root / collection / "edge_config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = {}
            known = self._sparse[collection] = SPARSE_VECTOR in (stored.get("sparse_vectors") or {})
        return known

    def upsert(self, collection: str, points: Sequence[IndexedPoint]) -> None:
        shard = self._shard(collection)
        sparse = self.has_sparse(collection)
        for i in range(0, len(points), _UPSERT_BATCH):
            batch = [qe.Point(p.chunk_id, _vectors(p, sparse), p.payload) for p in points[i : i + _UPSERT_BATCH]]
            self._call(shard.update, qe.UpdateOperation.upsert_points(batch))

    def upsert_arrays(self, collection: str, ids: Sequence[str], vectors: np.ndarray,
                      payloads: Sequence[dict[str, Any]], sparse: Sequence[SparseVector] | None = None) -> None:
        """Bulk path for benchmarks and re-embedding: numpy vectors go in without lists."""
        shard = self._shard(collection)
        with_sparse = sparse is not None and self.has_sparse(collection)
        sparse_or_none: Sequence[SparseVector | None] = sparse if sparse is not None else [None] * len(ids)
        for i in range(0, len(ids), _UPSERT_BATCH):
            batch = [qe.Point(pid, {DENSE_VECTOR: vec, SPARSE_VECTOR: qe.SparseVector(sv.indices, sv.values)}
                              if with_sparse and sv is not None else vec, pl)
                     for pid, vec, pl, sv in
                     zip(ids[i : i + _UPSERT_BATCH], vectors[i : i + _UPSERT_BATCH], payloads[i : i + _UPSERT_BATCH],
                         sparse_or_none[i : i + _UPSERT_BATCH], strict=True)]
            self._call(shard.update, qe.UpdateOperation.upsert_points(batch))

    def delete_document(self, collection: str, tenant: str, document_id: str, keep_version: str | None = None) -> None:
        must: list[Any] = [_match("tenant", tenant), _match("document_id", document_id)]
        must_not = [_match("document_version", keep_version)] if keep_version else None
        shard = self._shard(collection)
        self._call(shard.update, qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=must, must_not=must_not)))

    def retrieve(self, collection: str, chunk_ids: Sequence[str]) -> list[IndexedPoint]:
        if not chunk_ids:
            return []
        records = self._call(self._shard(collection).retrieve, list(chunk_ids), True, True)
        return [IndexedPoint(chunk_id=str(r.id), vector=dense_of(r.vector) or [], payload=r.payload or {},
                             sparse=sparse_of(r.vector)) for r in records]

    def search(self, collection: str, vector: Sequence[float], k: int, flt: SearchFilter) -> list[SearchHit]:
        shard = self._shard(collection)
        request = qe.QueryRequest(
            limit=k, query=qe.Query.Nearest(list(map(float, vector))), filter=_filter(flt), with_payload=True,
            params=qe.SearchParams(hnsw_ef=self._hnsw.ef_search),
        )
        points = self._call(shard.query, request)
        return [SearchHit(chunk_id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in points]

    def query(self, collection: str, query: VectorQuery, flt: SearchFilter) -> list[SearchHit]:
        """Dense, sparse, or both fused with RRF in the engine. The tenant/ACL filter is set on
        each prefetch too, so the candidates fused are the caller's own."""
        shard = self._shard(collection)
        where = _filter(flt, skip_duplicates=query.skip_duplicates)
        params = qe.SearchParams(hnsw_ef=self._hnsw.ef_search)
        dense = qe.Query.Nearest(list(map(float, query.dense))) if query.dense is not None else None
        sparse = _sparse_query(query.sparse) if query.sparse is not None else None
        prefetches = None
        if query.mode == "hybrid":
            if dense is None or sparse is None:
                raise VectorIndexError("a hybrid query needs a dense and a sparse vector")
            prefetches = [qe.Prefetch(limit=query.prefetch_limit, query=dense, filter=where, params=params),
                          qe.Prefetch(limit=query.prefetch_limit, query=sparse, filter=where)]
            scoring: Any = qe.Fusion.Rrf(k=query.rrf_k,
                                         weights=list(query.rrf_weights) if query.rrf_weights else None)
        else:
            scoring = dense if query.mode == "dense" else sparse
            if scoring is None:
                raise VectorIndexError(f"a {query.mode} query needs a {query.mode} vector")
        request = qe.QueryRequest(limit=query.limit, query=scoring, prefetches=prefetches, filter=where,
                                  with_payload=True, with_vector=[DENSE_VECTOR] if query.with_vectors else None,
                                  params=params if query.mode == "dense" else None)
        points = self._call(shard.query, request)
        return [SearchHit(chunk_id=str(p.id), score=float(p.score), payload=p.payload or {},
                          vector=dense_of(p.vector) if query.with_vectors else None) for p in points]

    def count(self, collection: str, tenant: str | None = None, document_id: str | None = None) -> int:
        must = [_match(k, v) for k, v in (("tenant", tenant), ("document_id", document_id)) if v]
        shard = self._shard(collection)
        return int(self._call(shard.count, qe.CountRequest(exact=True, filter=qe.Filter(must=must) if must else None)))

    def document_versions(self, collection: str) -> dict[tuple[str, str, str], int]:
        shard = self._shard(collection)
        selector = qe.PayloadSelector.Include(VERSION_FIELDS)

        def pages() -> Iterator[list[Any]]:
            offset = None
            while True:
                records, offset = self._call(shard.scroll, qe.ScrollRequest(offset=offset, limit=2048,
                                                                              with_payload=selector))
                yield records
                if offset is None:
                    return

        return tally_versions(pages())

    def optimize(self, collection: str) -> bool:
        return bool(self._call(self._shard(collection).optimize))

    def purge(self, collection: str) -> None:
        """Rewrite the shard from its live points. Qdrant Edge keeps deleted payloads in its
        WAL and segments (optimize() did not drop them, measured), so erasure copies every
        surviving point, with the shard's own stored config and payload indexes, into a
        fresh directory and swaps it in; the old files are then removed."""
        path = self._root / collection
        with self._lock:
            shard = self._shards.pop(collection, None) or self._call(qe.EdgeShard.load, str(path))
            fresh_path = path.with_name(f".{collection}.rewrite")
            shutil.rmtree(fresh_path, ignore_errors=True)
            fresh_path.mkdir(parents=True)
            shutil.copy2(path / "edge_config.json", fresh_path / "edge_config.json")
            fresh = self._call(qe.EdgeShard.load, str(fresh_path))
            try:
                for key, index in shard.info().payload_schema.items():
                    self._call(fresh.update, qe.UpdateOperation.create_field_index(key, index.data_type))
                offset = None
                while True:
                    records, offset = self._call(shard.scroll, qe.ScrollRequest(
                        offset=offset, limit=_UPSERT_BATCH, with_payload=True, with_vector=True))
                    if records:
                        self._call(fresh.update, qe.UpdateOperation.upsert_points(
                            [qe.Point(r.id, r.vector, r.payload) for r in records]))
                    if offset is None:
                        break
                fresh.flush()
            finally:
                fresh.close()
                shard.close()
            retired = path.with_name(f".{collection}.retired")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(path, retired)
            os.replace(fresh_path, path)
            shutil.rmtree(retired)

    def indexed_vectors(self, collection: str) -> int:
        return int(self._shard(collection).info().indexed_vectors_count)

    def set_alias(self, alias: str, collection: str) -> None:
        """Aliases live in one JSON file, replaced atomically (write, fsync, rename)."""
        aliases = self._aliases()
        aliases[alias] = collection
        self._root.mkdir(parents=True, exist_ok=True)
        tmp = self._root / f".aliases.{os.getpid()}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(aliases, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._root / "aliases.json")

    def resolve_alias(self, alias: str) -> str | None:
        return self._aliases().get(alias)

    def _aliases(self) -> dict[str, str]:
        path = self._root / "aliases.json"
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise VectorIndexError(f"cannot read index aliases {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - translate once, at the adapter
            raise VectorIndexError(f"Qdrant Edge {getattr(fn, '__name__', 'call')} failed: {exc}") from exc


def _vectors(point: IndexedPoint, sparse: bool) -> Any:
    if not sparse or point.sparse is None:
        return point.vector
    return {DENSE_VECTOR: point.vector, SPARSE_VECTOR: qe.SparseVector(point.sparse.indices, point.sparse.values)}


def _sparse_query(vector: SparseVector) -> Any:
    return qe.Query.Nearest(qe.SparseVector(vector.indices, vector.values), using=SPARSE_VECTOR)


def _match(key: str, value: str) -> Any:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _filter(flt: SearchFilter, *, skip_duplicates: bool = False) -> Any:
    must: list[Any] = [_match("tenant", flt.tenant)]
    if skip_duplicates:  # unset on canonical chunks, and on every chunk indexed before near-duplicates were
        must.append(qe.IsEmptyCondition(key=DUPLICATE_OF))
    for key, values in (("document_id", flt.document_ids), ("source_uri", flt.source_uris),
                        ("media_type", flt.media_types)):
        if values is not None:
            must.append(qe.FieldCondition(key=key, match=qe.MatchAny(list(values))))
    if flt.access_tags is not None:
        should: list[Any] = [qe.IsEmptyCondition(key="access_tags")]  # untagged: readable by the whole tenant
        if flt.access_tags:
            should.append(qe.FieldCondition(key="access_tags", match=qe.MatchAny(list(flt.access_tags))))
        must.append(qe.Filter(should=should))
    return qe.Filter(must=must)
