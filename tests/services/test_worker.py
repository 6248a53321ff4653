"""Streaming ingestion against the real broker, in this process: requests produced to the
topic are indexed by one worker run, poison records land in the DLQ and the stream goes
on, one document's requests keep their order, deletes and prunes; and the request codec."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select
from worker_kafka import code, kafka_env, kafka_settings, produce_raw, read_topic, write_corpus

from lineage.tables import outbox
from schemas import ids
from schemas.documents import SourceDocument
from schemas.retrieval import SearchFilter
from services.answering import AnswerRequest
from services.application import Application
from services.ingest_requests import (
    DELETE_TYPE,
    UPSERT_TYPE,
    DeleteRequest,
    InvalidRequest,
    UpsertRequest,
    decode,
    delete_data,
    encode,
    upsert_data,
    uri_data,
)
from services.ingestion import IngestTargets
from services.streaming import ProduceRequest, WorkerMetrics

Build = Callable[..., Application]


@pytest.fixture
def build(make_components: Any) -> Iterator[Build]:
    """An Application over Components sharing the session's model, with this test's topics."""
    def factory(env: dict[str, str], **overrides: Any) -> Application:
        kafka = kafka_settings(env) | overrides.pop("kafka", {})
        return Application(make_components(kafka=kafka, **overrides))

    yield factory


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return kafka_env(kafka_bootstrap)


def headers_of(record: Any) -> dict[str, bytes]:
    return dict(record.headers or [])


def points_match_registry(app: Application, tenant: str = "default") -> dict[str, int]:
    """Points per indexed document in the index, each equal to the registry's chunk count."""
    comps = app.components
    counts = {}
    for record in comps.registry.indexed():
        if record.tenant != tenant:
            continue
        found = comps.index.count(record.collection, tenant, record.document_id)
        assert found == record.chunk_count, f"{record.source_uri}: {found} points for {record.chunk_count} chunks"
        counts[record.document_id] = found
    return counts


# --- the codec --------------------------------------------------------------------------

def test_requests_round_trip_and_poison_is_named() -> None:
    source = SourceDocument("/docs/a.txt", "héllo\n".encode(), "acme", access_tags=("hr",), source_root="/docs",
                            metadata={"team": "x"})
    encoded = encode(UPSERT_TYPE, upsert_data(source), deployment="test")
    request = decode(encoded.headers, encoded.value)
    assert isinstance(request, UpsertRequest)
    assert (request.content, request.tenant, request.access_tags, request.source_root) == (
        source.data, "acme", ("hr",), "/docs")
    assert encoded.key.decode() == ids.document_id("acme", "/docs/a.txt") == request.key
    binary = SourceDocument("/docs/b.pdf", b"%PDF-\xff\x00", "acme")
    data = upsert_data(binary)
    assert "content_base64" in data and "text" not in data
    back = decode(*(lambda e: (e.headers, e.value))(encode(UPSERT_TYPE, data, deployment="test")))
    assert isinstance(back, UpsertRequest) and back.content == binary.data
    gone = decode(*(lambda e: (e.headers, e.value))(encode(DELETE_TYPE, delete_data("acme", source_uri="/docs/a.txt"),
                                                          deployment="test")))
    assert gone == DeleteRequest("acme", ids.document_id("acme", "/docs/a.txt"))
    structured = {"specversion": "1.0", "id": "1", "source": "/x", "type": UPSERT_TYPE,
                  "datacontenttype": "application/json", "data": uri_data("acme", "https://example.org/", ())}
    fetched = decode([("content-type", b"application/cloudevents+json")], json.dumps(structured).encode())
    assert isinstance(fetched, UpsertRequest) and fetched.uri == "https://example.org/"

    good = dict(encoded.headers)
    poison: list[tuple[list[tuple[str, bytes]], bytes | None, str]] = [
        (list(good.items()), b"{not json", "not JSON"),
        ([(k, v) for k, v in good.items() if k != "ce_type"], encoded.value, "ce_type"),
        (list((good | {"ce_type": b"ai.ragline.document.frobnicate.v1"}).items()), encoded.value, "ce_type"),
        (list(good.items()), json.dumps({"tenant": "acme", "source_uri": "x"}).encode(), "exactly by one"),
        (list(good.items()), json.dumps({"tenant": "acme", "source_uri": "x", "text": "a",
                                         "uri": "https://e.org/"}).encode(), "exactly by one"),
        (list(good.items()), json.dumps({"tenant": "acme", "source_uri": "x", "text": "a", "extra": 1}).encode(),
         "must not contain"),
        (list((good | {"ce_tenant": b"globex"}).items()), encoded.value, "differs"),
        (list(good.items()), b'{"tenant": "acme", "source_uri": "x\\ud800", "text": "a"}', "lone surrogate"),
        (list(good.items()), json.dumps({"tenant": "acme", "source_uri": "/etc/passwd", "text": "a",
                                         "source_root": "/docs"}).encode(), "does not contain"),
        (list(good.items()), json.dumps({"tenant": "acme", "source_uri": "x", "uri": "file:///etc/passwd"}).encode(),
         "pattern"),
    ]
    for headers, value, why in poison:
        with pytest.raises(InvalidRequest, match=why):
            decode(headers, value)


# --- against the broker -----------------------------------------------------------------

def test_two_hundred_documents_through_one_worker_run(build: Build, env: dict[str, str], tmp_path: Path,
                                                      kafka_bootstrap: str) -> None:
    """Produced as `ragline produce` does, with poison between them: one worker run indexes
    every document, dead-letters the poison with its error and original record, commits,
    and the documents answer queries with their lineage events in the outbox."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 100)
    write_corpus(corpus / "more", 100, start=100)
    (corpus / "more" / "empty.txt").write_bytes(b"")  # extraction fails: no text
    app = build(env, kafka={"worker_batch_size": 40})
    first = app.streaming.produce(ProduceRequest([str(corpus / f"doc{i:03d}.txt") for i in range(100)], "default"))
    topic = env["RAGLINE_KAFKA__INGEST_TOPIC"]
    poison_headers = [("ce_specversion", b"1.0"), ("ce_type", UPSERT_TYPE.encode()), ("ce_id", b"p1")]
    produce_raw(kafka_bootstrap, topic, [
        (b"p1", b"\x00\x01 not json", poison_headers),
        (b"p2", json.dumps({"tenant": "default", "source_uri": "x"}).encode(), poison_headers),
        (b"p3", encode(UPSERT_TYPE, uri_data("default", "http://127.0.0.1:9/secret", ()), deployment="t").value,
         encode(UPSERT_TYPE, uri_data("default", "http://127.0.0.1:9/secret", ()), deployment="t").headers)])
    second = app.streaming.produce(ProduceRequest([str(corpus / "more")], "default"))
    assert (first.upserts, second.upserts, first.failures + second.failures) == (100, 101, [])

    metrics = WorkerMetrics()
    report = app.streaming.worker(metrics=metrics).run(until_idle_s=2)
    assert (report.consumed, report.new, report.dead_lettered) == (204, 200, 4), report
    assert report.batches >= 6 and report.retries == 0

    dead = read_topic(kafka_bootstrap, env["RAGLINE_KAFKA__INGEST_DLQ_TOPIC"], 4)
    errors = {r.key: headers_of(r)["ragline_error"].decode() for r in dead}
    assert len(dead) == 4
    assert "not JSON" in errors[b"p1"] and "exactly by one" in errors[b"p2"]
    assert "refused" in errors[b"p3"] and "127.0.0.1" in errors[b"p3"]
    empty_key = ids.document_id("default", str((corpus / "more" / "empty.txt").resolve())).encode()
    assert "empty" in errors[empty_key]
    p1 = next(r for r in dead if r.key == b"p1")
    assert p1.value == b"\x00\x01 not json" and headers_of(p1)["ce_id"] == b"p1"  # the original record
    assert headers_of(p1)["ragline_origin"].decode().startswith(f"{topic}/")

    assert len(points_match_registry(app)) == 200  # no duplicate point, no missing one
    for i in (7, 123, 199):
        outcome = app.answering.answer(AnswerRequest(f"What is the secret code of item {i}?", 3,
                                                     SearchFilter(tenant="default"), "/v1/query"))
        assert str(code(i)) in outcome.payload["answer"], outcome.payload
    with app.components.engine.connect() as conn:
        events = conn.execute(select(outbox.c.event_type).where(
            outbox.c.event_type == "ai.ragline.document.indexed.v1")).all()
    assert len(events) == 200
    scraped = generate_latest(metrics.prometheus).decode()
    assert 'ragline_worker_requests_total{result="new"} 200.0' in scraped
    assert 'ragline_worker_requests_total{result="dead_lettered"} 4.0' in scraped
    assert "ragline_worker_consumer_lag{partition=" in scraped and "ragline_worker_documents_per_second" in scraped

    again = app.streaming.worker().run(until_idle_s=1)  # everything was committed
    assert again.consumed == 0
    app.close()


def test_one_documents_requests_keep_their_order_and_deletes_apply(build: Build, env: dict[str, str],
                                                                   tmp_path: Path, kafka_bootstrap: str) -> None:
    app = build(env)
    topic = env["RAGLINE_KAFKA__INGEST_TOPIC"]
    uri = "kafka://feeds/notes.md"

    def upsert(text: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        e = encode(UPSERT_TYPE, {"tenant": "acme", "source_uri": uri, "text": text, "access_tags": ["ops"]},
                   deployment="t")
        return e.key, e.value, e.headers

    def delete() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        e = encode(DELETE_TYPE, delete_data("acme", source_uri=uri), deployment="t")
        return e.key, e.value, e.headers

    produce_raw(kafka_bootstrap, topic, [upsert("first version: the river is blue."),
                                         upsert("second version: the river is green."), delete(),
                                         upsert("third version: the river is golden."),
                                         upsert("fourth version, binary-safe: the river is silver.")])
    b64 = encode(UPSERT_TYPE, {"tenant": "acme", "source_uri": "kafka://feeds/b64.txt",
                               "content_base64": base64.b64encode(b"the lantern glows amber").decode()},
                 deployment="t")
    produce_raw(kafka_bootstrap, topic, [(b64.key, b64.value, b64.headers)])
    report = app.streaming.worker().run(until_idle_s=2)
    assert (report.new, report.updated, report.deleted, report.dead_lettered) == (3, 2, 1, 0), report
    doc = app.ingestion.get_document("acme", ids.document_id("acme", uri))
    assert doc is not None and doc.status == "indexed" and doc.access_tags == ["ops"]
    assert doc.version == ids.document_version(b"fourth version, binary-safe: the river is silver.")
    points_match_registry(app, "acme")
    app.close()


def test_produce_delete_and_prune(build: Build, env: dict[str, str], tmp_path: Path) -> None:
    """`produce --delete` by file and by folder, `produce --prune ROOT` for sources gone;
    a document whose identity merely looks like a path under ROOT is never pruned."""
    root = tmp_path / "root"
    paths = write_corpus(root, 6)
    write_corpus(root / "sub", 2, start=6)
    app = build(env)
    app.streaming.produce(ProduceRequest([str(root)], "default"))
    assert app.streaming.worker().run(until_idle_s=2).new == 8
    lookalike = SourceDocument(str(root.resolve() / "uploaded.txt"), b"uploaded by a client, not from disk",
                               "default")
    assert app.ingestion.ingest_document(lookalike).status == "new"

    paths[0].unlink()
    paths[1].rename(root / "renamed.txt")
    moved = app.streaming.produce(ProduceRequest([str(root)], "default", prune_root=str(root)))
    assert moved.upserts == 7 and sorted(moved.pruned) == sorted(str(p.resolve()) for p in paths[:2])
    deleted = app.streaming.produce(ProduceRequest([str(paths[2]), str(root / "sub")], "default", delete=True))
    assert deleted.deletes == 3
    report = app.streaming.worker().run(until_idle_s=2)
    assert (report.new, report.unchanged, report.deleted) == (1, 6, 5), report

    alive = {r.source_uri for r in app.ingestion.local.registered_under("default", str(root.resolve()))}
    assert alive == {str(p.resolve()) for p in (*paths[3:], root / "renamed.txt")}
    lookalike_id = ids.document_id("default", lookalike.source_uri)
    assert app.ingestion.get_document("default", lookalike_id).status == "indexed"  # type: ignore[union-attr]
    gone = app.ingestion.get_document("default", ids.document_id("default", str(paths[0].resolve())))
    assert gone is not None and gone.status == "deleted"
    assert app.components.index.count(gone.collection, "default", gone.document_id) == 0
    with app.components.engine.connect() as conn:
        events = conn.execute(select(outbox.c.event_type).where(
            outbox.c.event_type == "ai.ragline.document.deleted.v1")).all()
    assert len(events) == 5
    points_match_registry(app)
    app.close()


def test_ingest_prune_removes_what_is_gone_through_the_delete_path(build: Build, env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "root"
    paths = write_corpus(root, 4)
    elsewhere = write_corpus(tmp_path / "elsewhere", 1, start=10)
    app = build(env)
    request = IngestTargets([str(root), str(elsewhere[0])], "default")
    assert app.ingestion.ingest(request).summary.documents["new"] == 5
    hidden = root / ".hidden.txt"  # named by hand: the walk of root skips it, but it is there
    hidden.write_text("a dot file an operator named explicitly: the lantern is bronze.")
    assert app.ingestion.ingest(IngestTargets([str(hidden)], "default")).summary.documents["new"] == 1
    paths[0].unlink()
    elsewhere[0].unlink()
    run = app.ingestion.ingest(IngestTargets([str(root)], "default", prune=True))
    assert [r.source_uri for r in run.pruned] == [str(paths[0].resolve())]
    assert run.summary.documents == {"new": 0, "updated": 0, "unchanged": 3, "failed": 0}
    assert app.ingestion.get_document("default", ids.document_id("default", str(hidden.resolve()))
                                      ).status == "indexed"  # type: ignore[union-attr]
    assert app.ingestion.get_document("default", run.pruned[0].document_id).status == "deleted"  # type: ignore[union-attr]
    # the file named outside the pruned folder stays, though gone
    assert app.ingestion.get_document("default", ids.document_id("default", str(elsewhere[0].resolve()))
                                      ).status == "indexed"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="nothing was pruned"):
        app.ingestion.ingest(IngestTargets([str(tmp_path / "missing")], "default", prune=True))
    app.close()
