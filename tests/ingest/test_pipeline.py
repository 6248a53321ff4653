"""The ingest pipeline end to end on real components: extractors, chunkers, the offline
embedder, Qdrant Edge and the SQLite registry (DESIGN.md "Identity and idempotency")."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline, IngestSummary
from ingest.reconcile import reconcile
from ingest.sources import SourceOptions, iter_sources
from retrieval.retriever import Retriever
from schemas import ids
from schemas.retrieval import IndexedPoint, SearchFilter
from services.application import Application
from services.wiring import Components

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
SAMPLE_FILES = sorted(p.name for p in SAMPLES.iterdir() if p.is_file())
SEV1_QUERY = "how fast must a severity 1 incident be acknowledged"
MakeComponents = Callable[..., Components]


def run(comps: Components, targets: list[Path | str], tenant: str = "t",
        **kwargs: object) -> tuple[IngestPipeline, IngestSummary]:
    """One ingest run with a fresh pipeline (so its embedding stats count this run only)."""
    pipeline = comps.pipeline()
    summary = pipeline.ingest(iter_sources([str(t) for t in targets], SourceOptions(tenant=tenant)), **kwargs)
    return pipeline, summary


def doc_id(path: Path, tenant: str = "t") -> str:
    return ids.document_id(tenant, str(path.resolve()))


def versions_of(comps: Components, document_id: str) -> set[str]:
    return {v for (_, d, v) in comps.index.document_versions(comps.collection) if d == document_id}


def search(comps: Components, query: str, flt: SearchFilter, k: int = 3) -> list:
    chunks, _ = Retriever(comps.embedder, comps.index, comps.collection).retrieve(query, k, flt)
    return chunks


@pytest.fixture
def samples_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample corpus."""
    return Path(shutil.copytree(SAMPLES, tmp_path / "samples"))


def test_full_ingest_indexes_every_sample(make_components: MakeComponents) -> None:
    comps = make_components()
    pipeline, summary = run(comps, [SAMPLES])

    assert summary.documents == {"new": len(SAMPLE_FILES), "updated": 0, "unchanged": 0, "failed": 0}
    assert summary.errors == [] and summary.stopped is None
    assert summary.chunks > 0
    records = list(comps.registry.indexed(comps.collection))
    assert sorted(Path(r.source_uri).name for r in records) == SAMPLE_FILES
    assert all(r.status == "indexed" and r.chunk_count > 0 and r.pipeline_fingerprint == comps.pipeline_fingerprint
               for r in records)
    assert sum(r.chunk_count for r in records) == summary.chunks
    assert comps.index.count(comps.collection) == summary.chunks
    assert comps.index.count(comps.collection, tenant="t") == summary.chunks
    assert pipeline.embedder.stats.requests > 0
    assert pipeline.embedder.stats.embedded_texts == summary.chunks  # every chunk text is distinct

    hits = search(comps, SEV1_QUERY, SearchFilter(tenant="t"))
    assert Path(hits[0].source_uri).name == "incident-runbook.pdf"
    assert hits[0].page_start is not None and hits[0].text


def test_second_ingest_of_the_same_corpus_makes_no_embedding_request(make_components: MakeComponents) -> None:
    comps = make_components()
    _, first = run(comps, [SAMPLES])
    points_before = comps.index.document_versions(comps.collection)

    pipeline, again = run(comps, [SAMPLES])

    assert pipeline.embedder.stats.requests == 0
    assert pipeline.embedder.stats.embedded_texts == 0
    assert again.documents == {"new": 0, "updated": 0, "unchanged": len(SAMPLE_FILES), "failed": 0}
    assert again.chunks == first.chunks
    assert comps.index.document_versions(comps.collection) == points_before


def test_a_changed_file_replaces_its_old_version(make_components: MakeComponents, samples_copy: Path) -> None:
    comps = make_components()
    run(comps, [samples_copy])
    changed = samples_copy / "ragline-overview.md"
    changed_id = doc_id(changed)
    old_version = comps.registry.get("t", changed_id).version
    before = comps.index.document_versions(comps.collection)

    text = changed.read_text()
    changed.write_text(text.replace("## Retrieval", "## Retrieval\n\nSearches are filtered by tenant first.\n", 1))
    pipeline, summary = run(comps, [samples_copy])

    assert summary.documents == {"new": 0, "updated": 1, "unchanged": len(SAMPLE_FILES) - 1, "failed": 0}
    record = comps.registry.get("t", changed_id)
    assert record.status == "indexed" and record.version != old_version
    assert record.version == ids.document_version(changed.read_bytes())
    assert versions_of(comps, changed_id) == {record.version}
    after = comps.index.document_versions(comps.collection)
    assert after[("t", changed_id, record.version)] == record.chunk_count
    assert {k: v for k, v in after.items() if k[1] != changed_id} == {
        k: v for k, v in before.items() if k[1] != changed_id}
    # Chunks whose text did not change come from the embedding cache.
    stats = pipeline.embedder.stats
    assert stats.cache_hits > 0 and stats.embedded_texts < record.chunk_count


def test_every_malformed_file_fails_alone_and_the_run_goes_on(
        make_components: MakeComponents, corpora: Path, tmp_path: Path) -> None:
    comps = make_components(extraction={"timeout_s": 10, "memory_mb": 768})
    malformed = corpora / "malformed"
    folders = sorted(p for p in malformed.iterdir() if p.is_dir())
    files = {str(p.resolve()) for folder in folders for p in folder.rglob("*") if p.is_file()}
    good = tmp_path / "good" / "ragline-overview.md"
    good.parent.mkdir()
    shutil.copy(SAMPLES / "ragline-overview.md", good)
    seen: list[str] = []

    pipeline = comps.pipeline()
    summary = pipeline.ingest(iter_sources([*map(str, folders), str(good)], SourceOptions(tenant="t")),
                              on_document=lambda outcome: seen.append(outcome.source_uri))

    assert len(files) >= 70 and sorted(seen) == sorted([*files, str(good.resolve())])
    assert summary.stopped is None
    assert summary.documents["failed"] == len(summary.errors) > 0
    failed = {e["source"] for e in summary.errors}
    assert failed <= files, "every error names the file it belongs to"
    assert all(e["error"].strip() for e in summary.errors)
    for source in failed:
        record = comps.registry.get("t", ids.document_id("t", source))
        assert record.status == "failed" and record.last_error
    for source in files - failed:  # the rest opened: the manifest's recoverable damage
        assert comps.registry.get("t", ids.document_id("t", source)).status == "indexed"
    # The good document beside them is indexed and searchable.
    good_record = comps.registry.get("t", doc_id(good))
    assert good_record.status == "indexed" and good_record.chunk_count > 0
    indexed = list(comps.registry.indexed(comps.collection))
    assert comps.index.count(comps.collection) == sum(r.chunk_count for r in indexed)
    hits = search(comps, "transactional outbox", SearchFilter(tenant="t", document_ids=(good_record.document_id,)))
    assert hits and hits[0].document_id == good_record.document_id


def test_a_scanned_pdf_fails_naming_its_pages(make_components: MakeComponents, corpora: Path) -> None:
    """With OCR off (with it on, tests/ingest/test_pdf_ocr.py indexes the same scan)."""
    comps = make_components(extraction={"ocr": False})
    scan = corpora / "pdf" / "files" / "ocrmypdf-cardinal-rotated-scans.pdf"
    pipeline, summary = run(comps, [scan])

    assert summary.documents["failed"] == 1
    (error,) = summary.errors
    assert error["source"] == str(scan.resolve())
    assert "no extractable text" in error["error"] and "page(s) 1-4 of 4" in error["error"]
    assert pipeline.embedder.stats.requests == 0
    assert comps.registry.get("t", doc_id(scan)).status == "failed"


def test_delete_removes_points_and_marks_the_registry(make_components: MakeComponents) -> None:
    comps = make_components()
    pipeline, summary = run(comps, [SAMPLES])
    runbook = doc_id(SAMPLES / "incident-runbook.pdf")
    runbook_chunks = comps.registry.get("t", runbook).chunk_count
    assert comps.index.count(comps.collection, "t", runbook) == runbook_chunks > 0

    assert pipeline.delete("t", runbook) is True

    assert comps.index.count(comps.collection, "t", runbook) == 0
    assert comps.index.count(comps.collection) == summary.chunks - runbook_chunks
    record = comps.registry.get("t", runbook)
    assert record.status == "deleted" and record.chunk_count == 0
    assert pipeline.delete("t", runbook) is False
    assert pipeline.delete("t", "no-such-document") is False
    assert all(h.document_id != runbook for h in search(comps, SEV1_QUERY, SearchFilter(tenant="t"), k=20))
    # Ingesting it again brings it back as a new document, from the embedding cache.
    again, resumed = run(comps, [SAMPLES / "incident-runbook.pdf"])
    assert resumed.documents["new"] == 1 and again.embedder.stats.requests == 0
    assert comps.index.count(comps.collection, "t", runbook) > 0


def test_tenants_never_share_ids_or_points(make_components: MakeComponents) -> None:
    comps = make_components()
    runbook = SAMPLES / "incident-runbook.pdf"
    _, for_a = run(comps, [runbook], tenant="a")
    pipeline_b, for_b = run(comps, [runbook], tenant="b")
    run(comps, [SAMPLES / "ragline-overview.md"], tenant="b")

    id_a, id_b = doc_id(runbook, "a"), doc_id(runbook, "b")
    assert id_a != id_b
    assert for_a.documents["new"] == for_b.documents["new"] == 1
    assert pipeline_b.embedder.stats.requests == 0, "the same text is served from the cache across tenants"
    points = comps.index.document_versions(comps.collection)
    overview_b = doc_id(SAMPLES / "ragline-overview.md", "b")
    assert {(t, d) for t, d, _ in points} == {("a", id_a), ("b", id_b), ("b", overview_b)}
    assert comps.index.count(comps.collection, tenant="a") == for_a.chunks
    hits = search(comps, SEV1_QUERY, SearchFilter(tenant="a"), k=50)
    assert hits and {h.document_id for h in hits} == {id_a}
    assert comps.registry.get("a", id_b) is None and comps.registry.get("b", id_a) is None


def test_reconcile_finds_drift_and_repairs_it(make_components: MakeComponents) -> None:
    comps = make_components()
    pipeline, summary = run(comps, [SAMPLES])
    index, collection = comps.index, comps.collection
    clean = reconcile(comps.registry, index, collection)
    assert clean.consistent and clean.discrepancies == []
    assert clean.documents == len(SAMPLE_FILES) and clean.points == summary.chunks

    missing = doc_id(SAMPLES / "incident-runbook.pdf")
    extra = doc_id(SAMPLES / "ragline-overview.md")
    stale = doc_id(SAMPLES / "token_bucket.py")
    extra_version = comps.registry.get("t", extra).version
    index.delete_document(collection, "t", missing)  # all its points gone
    vector = [1.0] + [0.0] * (comps.embedder.dimensions - 1)

    def point(document_id: str, version: str, n: int) -> IndexedPoint:
        return IndexedPoint(chunk_id=ids.chunk_id("t", document_id, version, "drift", n), vector=vector, payload={
            "tenant": "t", "document_id": document_id, "document_version": version, "text": "drift"})

    index.upsert(collection, [
        point(extra, extra_version, 99),  # one point too many for the registered version
        point(stale, "0" * 64, 0),  # a version the registry never recorded
        point("unregistered-document", "1" * 64, 0),  # a document the registry does not know
    ])

    drift = reconcile(comps.registry, index, collection)
    found = {(d.kind, d.document_id): d for d in drift.discrepancies}
    assert not drift.consistent
    assert set(found) == {("missing_points", missing), ("count_mismatch", extra), ("orphan_points", stale),
                          ("orphan_points", "unregistered-document")}
    assert found[("count_mismatch", extra)].found == found[("count_mismatch", extra)].expected + 1
    assert drift.to_dict()["consistent"] is False

    repaired = Application(comps).ingestion.reconcile(repair=True)
    assert repaired.consistent
    assert {d.repaired for d in repaired.discrepancies} == {"reindexed", "deleted"}

    after = reconcile(comps.registry, index, collection)
    assert after.consistent and after.discrepancies == []
    assert index.count(collection) == summary.chunks
    assert Path(search(comps, SEV1_QUERY, SearchFilter(tenant="t"))[0].source_uri).name == "incident-runbook.pdf"


def test_reconcile_cannot_repair_a_document_whose_source_is_gone(
        make_components: MakeComponents, samples_copy: Path) -> None:
    comps = make_components()
    pipeline, _ = run(comps, [samples_copy / "ragline-overview.md"])
    gone = doc_id(samples_copy / "ragline-overview.md")
    comps.index.delete_document(comps.collection, "t", gone)
    (samples_copy / "ragline-overview.md").unlink()

    report = Application(comps).ingestion.reconcile(repair=True)

    assert not report.consistent
    assert [(d.kind, d.repaired) for d in report.discrepancies] == [("missing_points", None)]
    assert comps.registry.get("t", gone).status == "stale"


def test_estimate_embeds_nothing_and_reports_tokens(make_components: MakeComponents) -> None:
    comps = make_components(embedding={"price_per_million_tokens": 1000.0})
    pipeline, summary = run(comps, [SAMPLES], estimate_only=True)

    assert pipeline.embedder.stats.requests == 0
    assert comps.index.count(comps.collection) == 0
    assert list(comps.registry.indexed()) == []
    est = summary.estimate
    assert est is not None and est["tokens"] > 0 and est["texts"] == est["uncached_texts"] == summary.chunks
    assert est["cost_usd"] == pytest.approx(est["tokens"] * 1000.0 / 1_000_000)

    # After a real run the same estimate finds everything cached: nothing left to pay for.
    run(comps, [SAMPLES])
    _, cached = run(comps, [SAMPLES], estimate_only=True)
    assert cached.estimate is not None and cached.estimate["uncached_texts"] == 0
    assert cached.estimate["cost_usd"] == 0.0


def test_a_budget_stops_the_run_before_it_overspends(make_components: MakeComponents) -> None:
    comps = make_components(embedding={"price_per_million_tokens": 1000.0, "budget_usd": 0.0001})
    pipeline, summary = run(comps, [SAMPLES])

    assert summary.stopped is not None and "budget" in summary.stopped
    assert pipeline.embedder.stats.requests == 0 and pipeline.embedder.stats.cost_usd == 0.0
    assert comps.index.count(comps.collection) == 0


def test_a_budget_lets_the_run_spend_up_to_it(make_components: MakeComponents) -> None:
    priced = {"price_per_million_tokens": 1000.0}
    _, estimate = run(make_components(embedding=priced), [SAMPLES], estimate_only=True)
    budget = estimate.estimate["cost_usd"] / 2
    comps = make_components(embedding={**priced, "budget_usd": budget})

    pipeline, summary = run(comps, [SAMPLES])

    assert summary.stopped is not None and f"${budget:.4f}" in summary.stopped
    assert 0 < summary.documents["new"] < len(SAMPLE_FILES)
    assert 0 < pipeline.embedder.stats.cost_usd <= budget
    assert comps.index.count(comps.collection) == summary.chunks
