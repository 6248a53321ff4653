"""Tenant-scoped storage identities, kept bytes and ``reindex`` on real components
(offline embedder, Qdrant Edge, SQLite registry)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.retriever import Retriever
from schemas import ids
from schemas.documents import SourceDocument
from schemas.retrieval import SearchFilter
from services.application import Application
from services.settings import Settings
from services.wiring import Components

MakeComponents = Callable[..., Components]
HANDBOOK = "Employee handbook: remote work needs the approval of the team lead and is limited to three days a week."


def visible(comps: Components, tenant: str, document_id: str, collection: str | None = None) -> bool:
    retriever = Retriever(comps.embedder, comps.index, collection or comps.collection)
    chunks, _ = retriever.retrieve("remote work approval", 5, SearchFilter(tenant=tenant, document_ids=(document_id,)))
    return any(c.document_id == document_id for c in chunks)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, local_embedder: Any) -> Iterator[Components]:
    comps = Components(Settings(home=tmp_path_factory.mktemp("isolation")))
    comps.__dict__["embedder"] = local_embedder
    comps.index.ensure_collection(comps.collection, comps.embedder.dimensions)
    yield comps
    comps.close()


def test_chunk_ids_are_scoped_by_tenant() -> None:
    assert ids.chunk_id("acme", "handbook", "v", "fp", 0) != ids.chunk_id("globex", "handbook", "v", "fp", 0)


EXAMPLES = itertools.count()
OPS = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["upsert", "delete", "reupload"])),
               min_size=1, max_size=6)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS, tenants=st.sampled_from([("acme", "globex"), ("t1", "t2"), ("x", "x-2")]))
def test_colliding_ids_and_bytes_never_cross_tenants(shared: Components, ops: list[tuple[str, str]],
                                                      tenants: tuple[str, str]) -> None:
    """Two tenants upload the same bytes under the same document id; whatever either does,
    the other's view (search and registry) is what its own operations alone would give."""
    pipeline = shared.pipeline()
    suffix = next(EXAMPLES)  # examples share one index: each gets an id of its own
    document_id = f"employee-handbook-{suffix}"
    data = f"{HANDBOOK} ({suffix})".encode()
    names = {"a": tenants[0], "b": tenants[1]}
    expected = {"a": False, "b": False}
    for who, op in ops:
        tenant = names[who]
        if op in ("upsert", "reupload"):
            outcome = pipeline.ingest_one(SourceDocument(f"upload://{tenant}/handbook.txt", data, tenant,
                                                         document_id=document_id))
            assert outcome.status in ("new", "updated", "unchanged")
            assert outcome.status != "unchanged" or expected[who]  # a no-op only when it is really there
            expected[who] = True
        else:
            assert pipeline.delete(tenant, document_id) is expected[who]
            expected[who] = False
        for side, name in names.items():
            assert visible(shared, name, document_id) is expected[side], (ops, side)
            record = shared.registry.get(name, document_id)
            assert (record is not None and record.status == "indexed") is expected[side]


def test_reindex_builds_a_new_generation_from_kept_bytes(make_components: MakeComponents, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = make_components(home=home, chunking={"max_tokens": 120})
    first.index.ensure_collection(first.collection, first.embedder.dimensions)
    pipeline = first.pipeline()
    inline = SourceDocument("text://acme/handbook.txt", HANDBOOK.encode(), "acme", document_id="handbook")
    upload = SourceDocument("upload://acme/policy.md", b"# Policy\n\nRemote work approval comes from HR.", "acme")
    for source in (inline, upload):
        assert pipeline.ingest_one(source).status == "new"
    assert "now serves" in Application(first).ingestion.promote_if_complete()
    old = first.collection
    kept = list((home / "sources").rglob("*"))
    assert sum(p.is_file() for p in kept) == 2  # the bytes of the two documents with no file to re-read
    assert not any("acme" in str(p) for p in kept)  # tenant names are hashed out of paths
    first.close()

    second = make_components(home=home, chunking={"max_tokens": 160})  # a new fingerprint: a new generation
    assert second.collection != old and second.serving_collection == old
    second.index.ensure_collection(second.collection, second.embedder.dimensions)
    late = SourceDocument("upload://acme/late.md", b"Remote work approval for contractors: the project lead.",
                          "acme", document_id="late")
    assert second.pipeline().ingest_one(late).status == "new"
    # while the generations coexist, the upload is written to both: found before the alias moves
    assert visible(second, "acme", "late", old) and visible(second, "acme", "late", second.collection)
    assert "incomplete" in Application(second).ingestion.promote_if_complete()

    run = Application(second).ingestion.reindex()
    assert run.summary.documents["failed"] == 0 and run.summary.documents["updated"] == 2
    assert run.generation is not None and "now serves" in run.generation  # reindex moves the alias itself
    for document_id in ("handbook", ids.document_id("acme", upload.source_uri), "late"):
        assert visible(second, "acme", document_id, second.index.resolve_alias(second.alias))


def test_reindex_reports_a_document_whose_bytes_are_gone(make_components: MakeComponents, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = make_components(home=home, chunking={"max_tokens": 120})
    first.index.ensure_collection(first.collection, first.embedder.dimensions)
    first.pipeline().ingest_one(SourceDocument("text://acme/a.txt", HANDBOOK.encode(), "acme", document_id="a"))
    for path in (home / "sources").rglob("*"):
        if path.is_file():
            path.unlink()  # an operator cleaned the wrong folder
    first.close()
    second = make_components(home=home, chunking={"max_tokens": 160})
    second.index.ensure_collection(second.collection, second.embedder.dimensions)
    summary = Application(second).ingestion.reindex().summary
    assert summary.documents["failed"] == 1
    assert "ingest it again" in json.dumps(summary.errors)


def test_delete_erases_the_kept_bytes(make_components: MakeComponents, tmp_path: Path) -> None:
    comps = make_components(home=tmp_path / "home")
    comps.index.ensure_collection(comps.collection, comps.embedder.dimensions)
    pipeline = comps.pipeline()
    source = SourceDocument("upload://acme/a.txt", HANDBOOK.encode(), "acme", document_id="a")
    pipeline.ingest_one(source)
    version = ids.document_version(source.data)
    assert comps.source_store.get("acme", version) == source.data
    assert comps.source_store.get("globex", version) is None  # per tenant, not per content alone
    assert pipeline.delete("acme", "a")
    assert comps.source_store.get("acme", version) is None


def test_forget_erases_the_document_from_every_coexisting_generation(make_components: MakeComponents,
                                                                     tmp_path: Path) -> None:
    """One forget for the CLI and the API (the audit use case): while a new generation is
    being built, the generation the alias still serves loses the document too."""
    home = tmp_path / "home"
    first = make_components(home=home, chunking={"max_tokens": 120})
    first.index.ensure_collection(first.collection, first.embedder.dimensions)
    handbook = SourceDocument("text://acme/handbook.txt", HANDBOOK.encode(), "acme", document_id="handbook")
    first.pipeline().ingest_one(handbook)
    assert "now serves" in Application(first).ingestion.promote_if_complete()
    old = first.collection
    first.close()

    second = make_components(home=home, chunking={"max_tokens": 160})
    application = Application(second)
    assert application.ingestion.ingest_document(handbook).status == "updated"  # now in the new generation
    assert visible(second, "acme", "handbook", old) and visible(second, "acme", "handbook", second.collection)
    report = application.audit.forget("acme", "handbook")
    assert report.chunks_erased > 0
    assert not visible(second, "acme", "handbook", old)
    assert not visible(second, "acme", "handbook", second.collection)
