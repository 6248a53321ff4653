"""One behaviour suite for the ``VectorIndex`` seam, run on every implementation:
Qdrant Edge (embedded) and qdrant-client in local mode (the server adapter's API)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from ingest.embed.sparse import BM25SparseEncoder
from retrieval.index import HnswConfig, QdrantEdgeIndex, QdrantServerIndex
from schemas import ids
from schemas.errors import VectorIndexError
from schemas.protocols import VectorIndex
from schemas.retrieval import IndexedPoint, RetrievalMode, SearchFilter, VectorQuery

DIM = 8
COLLECTION = "behaviour"
OpenIndex = Callable[[], VectorIndex]

BACKENDS: dict[str, Callable[[Path], VectorIndex]] = {
    "edge": lambda root: QdrantEdgeIndex(root),
    "qdrant-local": lambda root: QdrantServerIndex.connect(path=str(root)),
}


@pytest.fixture(params=sorted(BACKENDS))
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenIndex]:
    """Opens the backend on one directory; every index it opened is closed afterwards."""
    opened: list[VectorIndex] = []

    def open_() -> VectorIndex:
        index = BACKENDS[request.param](tmp_path / "index")
        index.ensure_collection(COLLECTION, DIM)
        opened.append(index)
        return index

    yield open_
    for index in opened:
        with contextlib.suppress(Exception):  # already closed by the test
            index.close()


@pytest.fixture
def index(open_index: OpenIndex) -> VectorIndex:
    return open_index()


def axis(i: int, tilt: float = 0.0) -> list[float]:
    """A unit vector along axis ``i``, tilted towards the next axis by ``tilt``."""
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = tilt
    return (v / np.linalg.norm(v)).tolist()


def point(doc: str, n: int, vector: list[float], *, tenant: str = "t", version: str = "v1",
          tags: tuple[str, ...] = (), media_type: str = "text/plain", text: str | None = None) -> IndexedPoint:
    return IndexedPoint(chunk_id=ids.chunk_id("t", doc, version, "fp", n), vector=vector, payload={
        "tenant": tenant, "document_id": doc, "document_version": version, "source_uri": f"file:///{doc}",
        "media_type": media_type, "access_tags": list(tags), "chunk_index": n, "text": text or f"{doc}#{n}",
    })


def docs_of(hits: list) -> set[str]:
    return {h.document_id for h in hits}


def test_upsert_is_idempotent_by_chunk_id(index: VectorIndex) -> None:
    points = [point("d1", n, axis(n)) for n in range(3)]
    index.upsert(COLLECTION, points)
    index.upsert(COLLECTION, points)
    assert index.count(COLLECTION) == 3

    index.upsert(COLLECTION, [point("d1", 0, axis(0), text="rewritten")])
    assert index.count(COLLECTION) == 3
    (hit,) = index.search(COLLECTION, axis(0), 1, SearchFilter(tenant="t"))
    assert hit.chunk_id == points[0].chunk_id and hit.payload["text"] == "rewritten"


def test_ensure_collection_is_idempotent(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("d1", 0, axis(0))])
    index.ensure_collection(COLLECTION, DIM)
    assert index.count(COLLECTION) == 1


def test_search_ranks_by_cosine_similarity(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("near", 0, axis(0, 0.1)), point("mid", 0, axis(0, 1.0)),
                              point("far", 0, axis(4))])
    hits = index.search(COLLECTION, axis(0), 3, SearchFilter(tenant="t"))
    assert [h.document_id for h in hits] == ["near", "mid", "far"]
    assert hits[0].score == pytest.approx(1 / np.sqrt(1.01), abs=1e-4)
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[2].score == pytest.approx(0.0, abs=1e-4)
    assert [h.document_id for h in index.search(COLLECTION, axis(0), 2, SearchFilter(tenant="t"))] == ["near", "mid"]
    assert hits[0].payload["source_uri"] == "file:///near" and hits[0].payload["chunk_index"] == 0


def test_search_never_crosses_tenants(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("a-doc", 0, axis(0), tenant="a"), point("b-doc", 0, axis(0), tenant="b"),
                              point("b-doc2", 0, axis(1), tenant="b")])
    assert docs_of(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="a"))) == {"a-doc"}
    assert docs_of(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="b"))) == {"b-doc", "b-doc2"}
    assert index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="nobody")) == []


def test_access_tags_filter(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("public", 0, axis(0)), point("hr", 0, axis(0), tags=("hr",)),
                              point("eng", 0, axis(0), tags=("eng", "oncall")),
                              point("other-tenant", 0, axis(0), tenant="u", tags=("hr",))])

    def visible(tags: tuple[str, ...] | None) -> set[str]:
        return docs_of(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="t", access_tags=tags)))

    assert visible(None) == {"public", "hr", "eng"}  # no ACL filter asked for
    assert visible(()) == {"public"}  # untagged chunks are readable by every reader of the tenant
    assert visible(("hr",)) == {"public", "hr"}
    assert visible(("oncall",)) == {"public", "eng"}
    assert visible(("hr", "eng")) == {"public", "hr", "eng"}
    assert visible(("finance",)) == {"public"}


def test_document_source_and_media_type_filters(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("d1", 0, axis(0)), point("d1", 1, axis(1)),
                              point("d2", 0, axis(0), media_type="application/pdf"),
                              point("d3", 0, axis(0), media_type="text/html")])

    def found(**flt: object) -> set[str]:
        return docs_of(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="t", **flt)))

    assert found(document_ids=("d1", "d3")) == {"d1", "d3"}
    assert len(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="t", document_ids=("d1",)))) == 2
    assert found(media_types=("application/pdf", "text/html")) == {"d2", "d3"}
    assert found(source_uris=("file:///d2",)) == {"d2"}
    assert found(document_ids=("d1",), media_types=("application/pdf",)) == set()
    assert found(document_ids=()) == set()


def test_delete_document(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("d1", n, axis(n)) for n in range(3)] + [point("d2", 0, axis(0)),
                              point("d1", 0, axis(0), tenant="other")])
    index.delete_document(COLLECTION, "t", "d1")
    assert index.count(COLLECTION, "t", "d1") == 0
    assert index.count(COLLECTION, "t", "d2") == 1
    assert index.count(COLLECTION, "other", "d1") == 1, "a delete is scoped to its tenant"
    assert docs_of(index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="t"))) == {"d2"}
    index.delete_document(COLLECTION, "t", "never-indexed")  # deleting nothing is not an error
    assert index.count(COLLECTION) == 2


def test_delete_document_keeping_one_version(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("d1", n, axis(n), version="old") for n in range(3)]
                 + [point("d1", n, axis(n), version="new") for n in range(2)]
                 + [point("d2", 0, axis(0), version="old")])
    assert index.count(COLLECTION, document_id="d1") == 5

    index.delete_document(COLLECTION, "t", "d1", keep_version="new")

    assert index.document_versions(COLLECTION) == {("t", "d1", "new"): 2, ("t", "d2", "old"): 1}
    hits = index.search(COLLECTION, axis(0), 10, SearchFilter(tenant="t", document_ids=("d1",)))
    assert {h.payload["document_version"] for h in hits} == {"new"}


def test_count_and_document_versions(index: VectorIndex) -> None:
    assert index.count(COLLECTION) == 0 and index.document_versions(COLLECTION) == {}
    index.upsert(COLLECTION, [point("d1", n, axis(n)) for n in range(4)]
                 + [point("d2", 0, axis(0), tenant="u", version="v9")])
    assert index.count(COLLECTION) == 5
    assert index.count(COLLECTION, tenant="t") == 4 and index.count(COLLECTION, tenant="u") == 1
    assert index.count(COLLECTION, tenant="t", document_id="d2") == 0
    assert index.document_versions(COLLECTION) == {("t", "d1", "v1"): 4, ("u", "d2", "v9"): 1}


@pytest.fixture(params=["edge", "qdrant-memory"])
def bulk_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    """For tests with thousands of points: qdrant-client's local mode on a path commits
    every point to SQLite (seconds per thousand on a busy disk); in memory it is the same code."""
    index: VectorIndex = (QdrantEdgeIndex(tmp_path / "edge") if request.param == "edge"
                          else QdrantServerIndex(QdrantClient(location=":memory:")))
    index.ensure_collection(COLLECTION, DIM)
    yield index
    index.close()


def test_document_versions_pages_through_many_points(bulk_index: VectorIndex) -> None:
    index = bulk_index
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((2100, DIM)).astype(np.float32)  # more than one 2,048-point page
    index.upsert(COLLECTION, [point(f"d{n % 3}", n, vectors[n].tolist()) for n in range(2100)])
    assert index.document_versions(COLLECTION) == {("t", f"d{i}", "v1"): 700 for i in range(3)}


def test_unknown_collection_is_a_vector_index_error(index: VectorIndex) -> None:
    with pytest.raises(VectorIndexError):
        index.search("no-such-collection", axis(0), 3, SearchFilter(tenant="t"))


def test_reopen_after_close_keeps_points(open_index: OpenIndex) -> None:
    first = open_index()
    first.upsert(COLLECTION, [point("d1", n, axis(n)) for n in range(3)])
    first.delete_document(COLLECTION, "t", "d1", keep_version="v1")
    first.close()

    again = open_index()
    assert again.count(COLLECTION) == 3
    assert again.search(COLLECTION, axis(2), 1, SearchFilter(tenant="t"))[0].payload["chunk_index"] == 2


def test_edge_optimize_builds_hnsw_and_search_still_works(tmp_path: Path) -> None:
    # Edge indexes a segment only past its indexing threshold (~10 MB of vectors): 7,000 x 384-d.
    n, dim = 7000, 384
    index = QdrantEdgeIndex(tmp_path / "edge", HnswConfig(m=8, ef_construct=16))
    index.ensure_collection(COLLECTION, dim)
    vectors = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    chunk_ids = [ids.chunk_id("t", f"d{i % 10}", "v1", "fp", i) for i in range(n)]
    payloads = [{"tenant": "t" if i % 2 else "u", "document_id": f"d{i % 10}", "document_version": "v1",
                 "access_tags": [], "chunk_index": i} for i in range(n)]
    index.upsert_arrays(COLLECTION, chunk_ids, vectors, payloads)
    try:
        assert index.indexed_vectors(COLLECTION) == 0, "nothing is HNSW-indexed before optimize()"
        assert index.optimize(COLLECTION) is True
        assert index.indexed_vectors(COLLECTION) == n
        hits = index.search(COLLECTION, vectors[1].tolist(), 5, SearchFilter(tenant="t"))
        assert hits[0].payload["chunk_index"] == 1 and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert all(h.payload["tenant"] == "t" for h in hits) and len(hits) == 5
        index.delete_document(COLLECTION, "t", "d1")
        assert index.count(COLLECTION, "t", "d1") == 0
        assert index.search(COLLECTION, vectors[1].tolist(), 1, SearchFilter(tenant="t"))[0].payload["chunk_index"] != 1
    finally:
        index.close()
    reopened = QdrantEdgeIndex(tmp_path / "edge")
    try:
        assert reopened.count(COLLECTION) == n - n // 10
    finally:
        reopened.close()


def test_server_adapter_never_optimizes_in_process(tmp_path: Path) -> None:
    index = QdrantServerIndex.connect(path=str(tmp_path / "q"))
    try:
        index.ensure_collection(COLLECTION, DIM)
        assert index.optimize(COLLECTION) is False
    finally:
        index.close()


def test_alias_moves_between_generations(index: VectorIndex) -> None:
    index.ensure_collection("gen-b", DIM)
    assert index.resolve_alias("serving") is None
    index.set_alias("serving", COLLECTION)
    assert index.resolve_alias("serving") == COLLECTION
    index.set_alias("serving", "gen-b")
    assert index.resolve_alias("serving") == "gen-b"


# --- sparse vectors (IDF in the engine) and hybrid search (RRF in the engine) -------------------

ENCODER = BM25SparseEncoder()


def lexical(doc: str, n: int, vector: list[float], text: str, **kw: object) -> IndexedPoint:
    p = point(doc, n, vector, text=text, **kw)  # type: ignore[arg-type]
    return p.model_copy(update={"sparse": ENCODER.encode_documents([text])[0]})


def run(index: VectorIndex, mode: RetrievalMode, text: str, dense: list[float], k: int = 3,
        tenant: str = "t", **kw: object) -> list[str]:
    q = VectorQuery(mode=mode, limit=k, dense=dense, sparse=ENCODER.encode_query(text), **kw)  # type: ignore[arg-type]
    return [h.document_id for h in index.query(COLLECTION, q, SearchFilter(tenant=tenant))]


def test_new_collections_hold_sparse_vectors(index: VectorIndex) -> None:
    assert index.has_sparse(COLLECTION) is True


def test_sparse_search_ranks_by_bm25_with_the_engines_idf(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [
        lexical("common", 0, axis(0), "the protein binds the receptor in cells"),
        lexical("rare", 0, axis(1), "the zebraquux protein binds"),
        lexical("other", 0, axis(2), "protein receptor cells protein"),
    ])
    # "zebraquux" is in one chunk, "protein" in all three: IDF makes the rare term decide.
    assert run(index, "sparse", "zebraquux protein", axis(5))[0] == "rare"
    assert run(index, "sparse", "nothing matches this", axis(5)) == []


def test_hybrid_fuses_dense_and_sparse_in_the_engine(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [
        lexical("dense-best", 0, axis(0), "alpha beta gamma"),
        lexical("sparse-best", 0, axis(3), "zebraquux appears only here"),
        lexical("both-ok", 0, axis(0, 0.4), "zebraquux alpha"),
    ])
    dense = run(index, "dense", "zebraquux", axis(0))
    sparse = run(index, "sparse", "zebraquux", axis(0))
    hybrid = run(index, "hybrid", "zebraquux", axis(0))
    assert dense[0] == "dense-best" and "dense-best" not in sparse
    # the chunk ranked well by both lists wins the fusion; each list's own best follows
    assert hybrid[0] == "both-ok" and set(hybrid) == {"dense-best", "sparse-best", "both-ok"}


def test_hybrid_never_crosses_tenants(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [lexical("a-doc", 0, axis(0), "zebraquux", tenant="a"),
                              lexical("b-doc", 0, axis(1), "zebraquux", tenant="b")])
    for mode in ("sparse", "hybrid"):
        assert run(index, mode, "zebraquux", axis(0), k=10, tenant="b") == ["b-doc"]  # type: ignore[arg-type]


def test_hybrid_returns_dense_vectors_when_asked(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [lexical("d", 0, axis(2), "zebraquux")])
    q = VectorQuery(mode="hybrid", limit=1, dense=axis(2), sparse=ENCODER.encode_query("zebraquux"), with_vectors=True)
    (hit,) = index.query(COLLECTION, q, SearchFilter(tenant="t"))
    assert hit.vector is not None and np.allclose(hit.vector, axis(2), atol=1e-5)


def test_points_without_a_sparse_vector_are_found_densely(index: VectorIndex) -> None:
    index.upsert(COLLECTION, [point("plain", 0, axis(0))])
    assert run(index, "dense", "anything", axis(0)) == ["plain"]
    assert run(index, "hybrid", "anything", axis(0)) == ["plain"]


def test_edge_bulk_upsert_carries_sparse_vectors(tmp_path: Path) -> None:
    index = QdrantEdgeIndex(tmp_path / "bulk")
    try:
        index.ensure_collection(COLLECTION, DIM)
        texts = ["alpha beta", "zebraquux gamma"]
        points = [point(f"d{i}", 0, axis(i)) for i in range(2)]
        index.upsert_arrays(COLLECTION, [p.chunk_id for p in points], np.array([p.vector for p in points]),
                            [p.payload for p in points], sparse=ENCODER.encode_documents(texts))
        assert run(index, "sparse", "zebraquux", axis(5)) == ["d1"]
    finally:
        index.close()


def test_retrieve_returns_stored_points_with_both_vectors(index: VectorIndex) -> None:
    stored = lexical("d", 0, axis(1), "zebraquux alpha")
    index.upsert(COLLECTION, [stored, point("plain", 0, axis(2))])
    got = {p.chunk_id: p for p in index.retrieve(COLLECTION, [stored.chunk_id, point("plain", 0, axis(2)).chunk_id,
                                                              ids.chunk_id("t", "never", "v1", "fp", 0)])}
    assert set(got) == {stored.chunk_id, point("plain", 0, axis(2)).chunk_id}  # an unknown id is left out
    again = got[stored.chunk_id]
    assert again.payload == stored.payload and np.allclose(again.vector, axis(1), atol=1e-5)
    assert again.sparse is not None and stored.sparse is not None
    assert again.sparse.indices == stored.sparse.indices
    assert np.allclose(again.sparse.values, stored.sparse.values, atol=1e-5)
    assert got[point("plain", 0, axis(2)).chunk_id].sparse is None
    assert index.retrieve(COLLECTION, []) == []


def test_skip_duplicates_leaves_out_recorded_copies(index: VectorIndex) -> None:
    canonical = lexical("a", 0, axis(0), "zebraquux alpha")
    copy = lexical("b", 0, axis(0), "zebraquux alpha")
    index.upsert(COLLECTION, [canonical, copy.model_copy(update={"payload": {**copy.payload,
                                                                            "duplicate_of": canonical.chunk_id}})])
    for mode in ("dense", "sparse", "hybrid"):
        assert sorted(run(index, mode, "zebraquux", axis(0))) == ["a", "b"]  # type: ignore[arg-type]
        assert run(index, mode, "zebraquux", axis(0), skip_duplicates=True) == ["a"]  # type: ignore[arg-type]
