"""Qdrant server or cluster through ``qdrant-client`` (production; any number of replicas).

Tested against qdrant-client's local mode (``QdrantClient(path=...)``), which speaks the
same client API as a server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

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

_UPSERT_BATCH = 256


class QdrantServerIndex:
    def __init__(self, client: QdrantClient, hnsw: HnswConfig | None = None) -> None:
        self._client = client
        self._hnsw = hnsw or HnswConfig()
        self._known: set[str] = set()
        self._sparse: dict[str, bool] = {}

    @classmethod
    def connect(cls, url: str | None = None, api_key: str | None = None, path: str | None = None,
                hnsw: HnswConfig | None = None) -> QdrantServerIndex:
        client = QdrantClient(path=path) if path else QdrantClient(url=url, api_key=api_key)
        return cls(client, hnsw)

    def ensure_collection(self, name: str, dimensions: int) -> None:
        if name in self._known:
            return
        try:
            if not self._client.collection_exists(name):
                self._client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=dimensions, distance=models.Distance.COSINE),
                    sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    hnsw_config=models.HnswConfigDiff(m=self._hnsw.m, ef_construct=self._hnsw.ef_construct,
                                                      full_scan_threshold=self._hnsw.full_scan_threshold_kb),
                )
                for key in KEYWORD_FIELDS:
                    self._client.create_payload_index(name, key, models.PayloadSchemaType.KEYWORD)
        except (ApiException, ValueError) as exc:
            raise VectorIndexError(f"cannot create Qdrant collection {name}: {exc}") from exc
        self._known.add(name)

    def has_sparse(self, collection: str) -> bool:
        """From the collection's config: generations created before sparse vectors have none."""
        known = self._sparse.get(collection)
        if known is None:
            info = self._call(self._client.get_collection, collection)
            known = self._sparse[collection] = SPARSE_VECTOR in (info.config.params.sparse_vectors or {})
        return known

    def upsert(self, collection: str, points: Sequence[IndexedPoint]) -> None:
        sparse = self.has_sparse(collection)
        for i in range(0, len(points), _UPSERT_BATCH):
            batch = [models.PointStruct(id=p.chunk_id, vector=_vectors(p, sparse), payload=p.payload)
                     for p in points[i : i + _UPSERT_BATCH]]
            self._call(self._client.upsert, collection, batch, wait=True)

    def delete_document(self, collection: str, tenant: str, document_id: str, keep_version: str | None = None) -> None:
        must_not = [_match("document_version", keep_version)] if keep_version else None
        selector = models.FilterSelector(filter=models.Filter(
            must=[_match("tenant", tenant), _match("document_id", document_id)], must_not=must_not))
        self._call(self._client.delete, collection, selector, wait=True)

    def retrieve(self, collection: str, chunk_ids: Sequence[str]) -> list[IndexedPoint]:
        if not chunk_ids:
            return []
        records = self._call(self._client.retrieve, collection, list(chunk_ids), with_payload=True,
                             with_vectors=True)
        return [IndexedPoint(chunk_id=str(r.id), vector=dense_of(r.vector) or [], payload=r.payload or {},
                             sparse=sparse_of(r.vector)) for r in records]

    def search(self, collection: str, vector: Sequence[float], k: int, flt: SearchFilter) -> list[SearchHit]:
        response = self._call(
            self._client.query_points, collection, list(map(float, vector)),
            query_filter=_filter(flt), limit=k, with_payload=True,
            search_params=models.SearchParams(hnsw_ef=self._hnsw.ef_search),
        )
        return [SearchHit(chunk_id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in response.points]

    def query(self, collection: str, query: VectorQuery, flt: SearchFilter) -> list[SearchHit]:
        """Dense, sparse, or both fused with RRF in the engine (Query API prefetch + fusion);
        the tenant/ACL filter is set on each prefetch too."""
        where = _filter(flt, skip_duplicates=query.skip_duplicates)
        params = models.SearchParams(hnsw_ef=self._hnsw.ef_search)
        dense = list(map(float, query.dense)) if query.dense is not None else None
        sparse = _sparse(query.sparse) if query.sparse is not None else None
        kwargs: dict[str, Any] = {}
        if query.mode == "hybrid":
            if dense is None or sparse is None:
                raise VectorIndexError("a hybrid query needs a dense and a sparse vector")
            kwargs["prefetch"] = [
                models.Prefetch(query=dense, filter=where, limit=query.prefetch_limit, params=params),
                models.Prefetch(query=sparse, using=SPARSE_VECTOR, filter=where, limit=query.prefetch_limit)]
            kwargs["query"] = models.RrfQuery(rrf=models.Rrf(
                k=query.rrf_k, weights=list(query.rrf_weights) if query.rrf_weights else None))
        elif query.mode == "dense":
            if dense is None:
                raise VectorIndexError("a dense query needs a dense vector")
            kwargs |= {"query": dense, "search_params": params}
        else:
            if sparse is None:
                raise VectorIndexError("a sparse query needs a sparse vector")
            kwargs |= {"query": sparse, "using": SPARSE_VECTOR}
        response = self._call(self._client.query_points, collection, query_filter=where, limit=query.limit,
                              with_payload=True, with_vectors=[DENSE_VECTOR] if query.with_vectors else False,
                              **kwargs)
        return [SearchHit(chunk_id=str(p.id), score=float(p.score), payload=p.payload or {},
                          vector=dense_of(p.vector) if query.with_vectors else None) for p in response.points]

    def count(self, collection: str, tenant: str | None = None, document_id: str | None = None) -> int:
        must: list[Any] = [_match(k, v) for k, v in (("tenant", tenant), ("document_id", document_id)) if v]
        result = self._call(self._client.count, collection, models.Filter(must=must) if must else None, exact=True)
        return int(result.count)

    def document_versions(self, collection: str) -> dict[tuple[str, str, str], int]:
        def pages() -> Iterator[list[Any]]:
            offset = None
            while True:
                records, offset = self._call(self._client.scroll, collection, limit=2048, offset=offset,
                                             with_payload=VERSION_FIELDS)
                yield records
                if offset is None:
                    return

        return tally_versions(pages())

    def optimize(self, collection: str) -> bool:
        return False  # a Qdrant server runs its optimizers in the background

    def purge(self, collection: str) -> None:
        """Nothing a client can do: a Qdrant server drops deleted points from its segments
        when its vacuum optimizer runs and truncates its WAL on its own schedule (the README
        says what an operator sets for erasure on a deadline)."""

    def set_alias(self, alias: str, collection: str) -> None:
        """Delete and create in one request: Qdrant applies alias changes atomically."""
        operations: list[Any] = []
        if self.resolve_alias(alias) is not None:
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        operations.append(models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        self._call(self._client.update_collection_aliases, change_aliases_operations=operations)

    def resolve_alias(self, alias: str) -> str | None:
        aliases = self._call(self._client.get_aliases).aliases
        return next((a.collection_name for a in aliases if a.alias_name == alias), None)

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ApiException, ValueError, OSError) as exc:
            raise VectorIndexError(f"Qdrant {fn.__name__} failed: {exc}") from exc


def _vectors(point: IndexedPoint, sparse: bool) -> Any:
    if not sparse or point.sparse is None:
        return point.vector
    return {DENSE_VECTOR: point.vector, SPARSE_VECTOR: _sparse(point.sparse)}


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _filter(flt: SearchFilter, *, skip_duplicates: bool = False) -> models.Filter:
    must: list[Any] = [_match("tenant", flt.tenant)]
    if skip_duplicates:  # unset on canonical chunks, and on every chunk indexed before near-duplicates were
        must.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=DUPLICATE_OF)))
    for key, values in (("document_id", flt.document_ids), ("source_uri", flt.source_uris),
                        ("media_type", flt.media_types)):
        if values is not None:
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(values))))
    if flt.access_tags is not None:
        should: list[Any] = [models.IsEmptyCondition(is_empty=models.PayloadField(key="access_tags"))]
        if flt.access_tags:
            should.append(models.FieldCondition(key="access_tags", match=models.MatchAny(any=list(flt.access_tags))))
        must.append(models.Filter(should=should))
    return models.Filter(must=must)
