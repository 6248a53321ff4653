"""Lineage on a real Kafka broker: outbox -> relay -> Kafka (CloudEvents binary mode) ->
lander -> Iceberg, exactly once, with each row's topic, partition and offset; bad
records to the DLQ; a relay's re-sends deduplicated; offsets kept in Iceberg."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka_lineage import land, landed, outbox_events, produce_raw, quick_config, read_topic
from lineage_records import make_answer
from prometheus_client import generate_latest
from sqlalchemy import Engine

from lineage import IcebergLanding, OutboxEvent, OutboxRelay, SqlLineageStore, parse, serialize, validate_event
from lineage import lander as lander_module
from lineage.errors import InvalidEventError, LandingError
from lineage.events import build_answer_event, build_document_event
from lineage.iceberg import ANSWER_TABLE, COMPACTION_PROPERTY, DOCUMENT_TABLE
from lineage.kafka import ERROR_HEADER, ORIGIN_HEADER, KafkaPublisher, from_record, to_record
from lineage.lander import OFFSETS_PROPERTY, KafkaLander, landed_offsets
from lineage.relay import outbox_backlog
from schemas.lineage import DocumentChange
from services.api.metrics import Metrics
from services.db import make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
RAGLINE = str(Path(sys.executable).with_name("ragline"))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """Where the database does not matter (the lander's side): SQLite only, to keep the suite short."""
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_store(sqlite_engine: Engine) -> SqlLineageStore:
    return SqlLineageStore(sqlite_engine, deployment="test")


def change(kind: str, document_id: str = "doc-a") -> DocumentChange:
    fields: dict[str, Any] = {"pipeline_fingerprint": "fp", "chunk_ids": ["c1"], "media_type": "text/plain"} \
        if kind == "indexed" else {"forgotten": True}
    return DocumentChange(kind=kind, tenant="acme", document_id=document_id, document_version="b" * 64,  # type: ignore[arg-type]
                          source_uri=f"file:///{document_id}.txt", collection="minilm_384_fp",
                          occurred_at=datetime.now(UTC), **fields)


def test_outbox_to_iceberg_through_kafka_exactly_once(
        kafka_bootstrap: str, store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    config = quick_config(kafka_bootstrap)
    answers = [make_answer() for _ in range(40)]
    for answer in answers:
        store.record_answer(answer)
    store.record_document_change(change("indexed"))
    store.record_document_change(change("deleted"))

    report = OutboxRelay(engine, KafkaPublisher(config), batch_size=15).drain()
    assert (report.delivered, report.batches) == (42, 3)
    assert outbox_backlog(engine)[0] == 0  # every row acknowledged by the broker

    # On the wire: binary content mode, key = the answer id, value = the event's data.
    records = read_topic(config, config.answers_topic, 40)
    by_id = {r.key.decode(): r for r in records}
    assert set(by_id) == {a.answer_id for a in answers}
    one = by_id[answers[0].answer_id]
    headers = dict(one.headers)
    assert headers["ce_id"] == headers["ce_subject"] == one.key
    assert headers["ce_type"] == b"ai.ragline.answer.generated.v1" and headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json" and headers["ce_tenant"] == b"acme"
    assert json.loads(one.value) == parse(outbox_events(engine)[0].payload).get_data()

    first = land(config, lake)
    assert (first.landed, first.dead_lettered, first.duplicates) == (42, 0, 0)
    rows = landed(lake, ANSWER_TABLE, "event_id", "kafka_topic", "kafka_partition", "kafka_offset", "event")
    assert sorted(r["event_id"] for r in rows) == sorted(a.answer_id for a in answers)
    assert {r["kafka_topic"] for r in rows} == {config.answers_topic}
    coordinates = {(r["kafka_partition"], r["kafka_offset"]) for r in rows}
    assert len(coordinates) == 40 and {p for p, _ in coordinates} == {0, 1, 2}  # keyed over three partitions
    for row in rows[:5]:  # the event column holds a valid structured-mode CloudEvent
        validate_event(parse(row["event"]))
    assert len(landed(lake, DOCUMENT_TABLE)) == 2

    assert land(config, lake, idle_s=1.0).landed == 0  # a restart resumes after the landed offsets


def test_codec_round_trip_and_the_fast_validator_agrees_with_jsonschema() -> None:
    config = quick_config("127.0.0.1:9")
    events = [build_answer_event(make_answer(), deployment="t", keep_query_text=False),
              build_document_event(change("indexed"), deployment="t"),
              build_document_event(change("deleted"), deployment="t")]
    for n, event in enumerate(events):
        row = OutboxEvent(n + 1, event.get_id(), event.get_type(), "acme", event.get_time(), serialize(event))
        record = to_record(row, config)
        decoded = from_record(record.headers, record.value)
        assert parse(decoded.payload).get_attributes() == event.get_attributes()
        assert parse(decoded.payload).get_data() == event.get_data() and decoded.outbox_seq == n + 1

    # An outbox payload in another member order (data first) takes the full-parse path.
    event = events[0]
    reordered = json.dumps({"data": event.get_data()} | json.loads(serialize(event)))
    record = to_record(OutboxEvent(9, event.get_id(), event.get_type(), "acme", event.get_time(), reordered), config)
    assert parse(from_record(record.headers, record.value).payload).get_data() == event.get_data()
    for broken in ('{"id": "x", "data": {"a": 1}', '{"id": "x", "data": "text"}'):
        with pytest.raises(InvalidEventError):
            to_record(OutboxEvent(9, "x", event.get_type(), "acme", event.get_time(), broken), config)

    answer = events[0]
    mutations = [("status", "nope"), ("answer_sha256", "xyz"), ("answer_id", "not-a-uuid"), ("extra", 1),
                 ("usage", {"prompt_tokens": -1, "completion_tokens": 0, "total_tokens": 0}),
                 ("document_ids", ["a", "a"]), ("tenant", ""), ("retrieved", [{"rank": 1}])]
    for field, value in [*mutations, ("query", None)]:
        data = copy.deepcopy(answer.get_data())
        data[field] = value
        bad = type(answer)(answer.get_attributes(), data)
        row = OutboxEvent(1, bad.get_id(), bad.get_type(), "acme", bad.get_time(), serialize(bad))
        record = to_record(row, config)
        try:
            validate_event(bad)
            slow_ok = True
        except InvalidEventError:
            slow_ok = False
        try:
            from_record(record.headers, record.value)
            fast_ok = True
        except InvalidEventError:
            fast_ok = False
        assert slow_ok == fast_ok == (field == "query"), field
    # Stricter than jsonschema without rfc3339-validator installed: date-time is checked.
    data = copy.deepcopy(answer.get_data()) | {"retrieval_timestamp": "yesterday"}
    bad = type(answer)(answer.get_attributes(), data)
    record = to_record(OutboxEvent(1, bad.get_id(), bad.get_type(), "acme", bad.get_time(), serialize(bad)), config)
    with pytest.raises(InvalidEventError, match="retrieval_timestamp"):
        from_record(record.headers, record.value)


def test_bad_records_go_to_the_dlq_and_the_stream_goes_on(
        kafka_bootstrap: str, sqlite_store: SqlLineageStore, sqlite_engine: Engine, lake: IcebergLanding) -> None:
    config = quick_config(kafka_bootstrap, lander_batch_size=5)
    publisher = KafkaPublisher(config)
    for _ in range(6):
        sqlite_store.record_answer(make_answer())
    OutboxRelay(sqlite_engine, publisher).drain()
    good = to_record(outbox_events(sqlite_engine)[0], config)
    schema_broken = json.loads(good.value) | {"status": "exploded"}
    sqlite_store.record_document_change(change("deleted"))
    document = to_record(outbox_events(sqlite_engine)[-1], config)
    produce_raw(config, config.answers_topic, [
        (b"junk", b"\x00not json{", good.headers),  # unparseable value
        (b"k", json.dumps(schema_broken).encode(), good.headers),  # fails its JSON Schema
        (b"k", good.value, [h for h in good.headers if h[0] != "ce_type"]),  # no ce_type
        (b"k", document.value, document.headers),  # a valid document event on the answers topic
        (b"k", good.value, [*good.headers, ("ragline_outbox_seq", b"seven")]),  # a header it cannot read
    ])
    for _ in range(4):  # the stream goes on after them
        sqlite_store.record_answer(make_answer())
    OutboxRelay(sqlite_engine, publisher).drain()
    publisher.close()

    report = land(config, lake)
    assert (report.landed, report.dead_lettered) == (11, 5)  # 10 answers and the deletion (its own topic)
    dead = read_topic(config, config.dlq_topic, 5)
    errors = sorted(dict(r.headers)[ERROR_HEADER].decode() for r in dead)
    assert len(errors) == 5
    assert any("JSONDecodeError" in e for e in errors) and any("status" in e for e in errors)
    assert any("ce_type" in e for e in errors) and any("on topic" in e for e in errors)
    assert any("unreadable header" in e for e in errors)
    assert all(dict(r.headers)[ORIGIN_HEADER].startswith(f"{config.answers_topic}/0/".encode()) for r in dead)
    assert {r.value for r in dead} >= {b"\x00not json{"}  # the original record, as it was
    again = land(config, lake, idle_s=1.0)
    assert (again.consumed, again.dead_lettered) == (0, 0)  # nothing read twice


def test_an_outbox_row_too_large_for_a_record_goes_to_the_dlq_and_never_blocks_the_relay(
        kafka_bootstrap: str, sqlite_store: SqlLineageStore, sqlite_engine: Engine) -> None:
    config = quick_config(kafka_bootstrap, max_inline_bytes=2048)  # an answer's data is ~2.6 KB
    sqlite_store.record_answer(big := make_answer())
    sqlite_store.record_document_change(change("deleted"))  # small: goes through
    report = OutboxRelay(sqlite_engine, KafkaPublisher(config)).drain()
    assert report.delivered == 2 and outbox_backlog(sqlite_engine)[0] == 0
    [dead] = read_topic(config, config.dlq_topic, 1)
    assert dead.key == big.answer_id.encode() and b"MAX_INLINE_BYTES" in dict(dead.headers)[ERROR_HEADER]
    assert len(read_topic(config, config.documents_topic, 1)) == 1


def test_a_relay_resending_unacknowledged_rows_lands_each_event_once(
        kafka_bootstrap: str, sqlite_store: SqlLineageStore, sqlite_engine: Engine, lake: IcebergLanding) -> None:
    """A relay that died before the broker's acknowledgement sends the batch again: the same
    events at new offsets, inside one lander batch and across batches."""
    config = quick_config(kafka_bootstrap, lander_batch_size=10_000, lander_max_age_s=30)
    for _ in range(20):
        sqlite_store.record_answer(make_answer())
    events = outbox_events(sqlite_engine)
    publisher = KafkaPublisher(config)
    publisher.deliver("b1", events)
    publisher.deliver("b1", events[:7])  # re-sent: in the same lander batch
    first = land(config, lake, idle_s=1.5)
    assert (first.landed, first.duplicates) == (20, 7)

    publisher.deliver("b1", events[5:])  # re-sent after the first copies landed
    publisher.close()
    second = land(config, lake, idle_s=1.5)
    assert (second.landed, second.duplicates) == (0, 15)
    ids = [r["event_id"] for r in landed(lake, ANSWER_TABLE)]
    assert len(ids) == len(set(ids)) == 20


def test_a_failed_commit_is_read_again_and_lands_once(
        kafka_bootstrap: str, sqlite_store: SqlLineageStore, sqlite_engine: Engine, lake: IcebergLanding,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The lake fails the first commits (nothing landed yet, no offsets anywhere): the lander
    drops its batch, seeks back and lands every event once when the lake answers again."""
    config = quick_config(kafka_bootstrap, lander_batch_size=4)
    for _ in range(10):
        sqlite_store.record_answer(make_answer())
    OutboxRelay(sqlite_engine, KafkaPublisher(config)).drain()
    real = lander_module._append
    failing = {"left": 2}

    def flaky(*args: Any) -> bool:
        if failing["left"]:
            failing["left"] -= 1
            raise LandingError("the catalog is down")
        return real(*args)

    monkeypatch.setattr(lander_module, "_append", flaky)
    report = land(config, lake, idle_s=2.5)
    assert report.failures == 2 and report.landed == 10
    ids = [r["event_id"] for r in landed(lake, ANSWER_TABLE)]
    assert len(ids) == len(set(ids)) == 10


def test_offsets_in_iceberg_win_over_kafka_and_survive_a_compaction(
        kafka_bootstrap: str, sqlite_store: SqlLineageStore, sqlite_engine: Engine, lake: IcebergLanding) -> None:
    config = quick_config(kafka_bootstrap, lander_batch_size=4)
    for _ in range(12):
        sqlite_store.record_answer(make_answer())
    OutboxRelay(sqlite_engine, KafkaPublisher(config)).drain()
    assert land(config, lake).landed == 12
    before = landed_offsets(lake.table(ANSWER_TABLE), config.answers_topic)
    assert sum(before.values()) == 12
    lake.compact()  # carries the offsets forward (snapshot expiry may drop the lander's commits)
    table = lake.table(ANSWER_TABLE)
    summary = table.current_snapshot().summary.additional_properties  # type: ignore[union-attr]
    assert COMPACTION_PROPERTY in summary and json.loads(summary[OFFSETS_PROPERTY])[config.answers_topic]
    assert landed_offsets(table, config.answers_topic) == before
    # A snapshot without them (another engine's commit) is walked past.
    with table.transaction() as tx:
        tx.set_properties({"owner": "auditors"})
    table.append(table.schema().as_arrow().empty_table(), snapshot_properties={"written-by": "spark"})
    assert landed_offsets(lake.table(ANSWER_TABLE), config.answers_topic) == before

    # A new group has no Kafka offsets at all: it resumes from Iceberg's and lands nothing.
    fresh_group = KafkaLander(quick_config(kafka_bootstrap, answers_topic=config.answers_topic,
                                           documents_topic=config.documents_topic, dlq_topic=config.dlq_topic), lake)
    report = fresh_group.run(until_idle_s=1.5)
    assert (report.consumed, report.landed) == (0, 0)
    assert len(landed(lake, ANSWER_TABLE)) == 12


def test_cli_relay_lander_and_stats_with_a_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The wiring: with RAGLINE_KAFKA__BOOTSTRAP `ragline relay --once` publishes (the lake
    stays empty), `ragline lander` lands, and `lineage stats` keeps its keys."""
    config = quick_config(kafka_bootstrap)
    env = os.environ | {"RAGLINE_HOME": str(tmp_path / "home"), "RAGLINE_KAFKA__BOOTSTRAP": kafka_bootstrap,
                        "RAGLINE_KAFKA__ANSWERS_TOPIC": config.answers_topic,
                        "RAGLINE_KAFKA__DOCUMENTS_TOPIC": config.documents_topic,
                        "RAGLINE_KAFKA__DLQ_TOPIC": config.dlq_topic,
                        "RAGLINE_KAFKA__LANDER_GROUP": config.lander_group,
                        "RAGLINE_KAFKA__LANDER_MAX_AGE_S": "0.3"}
    (tmp_path / "home").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'ragline.db'}")  # the home's default database
    migrate(engine)
    store = SqlLineageStore(engine)
    for _ in range(9):
        store.record_answer(make_answer())
    engine.dispose()

    def ragline(*args: str) -> Any:
        done = subprocess.run([RAGLINE, *args, "--json"], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert ragline("relay", "--once")["delivered"] == 9
    stats = ragline("lineage", "stats")
    assert (stats["outbox_pending"], stats["outbox_sent"], stats["iceberg_answer_events"]) == (0, 9, 0)
    assert ragline("lander", "--until-idle", "1.5")["landed"] == 9
    stats = ragline("lineage", "stats")
    assert set(stats) == {"answers", "answer_sources", "outbox_pending", "outbox_sent", "iceberg_answer_events",
                          "iceberg_document_events"}
    assert stats["iceberg_answer_events"] == 9


@pytest.mark.parametrize("pending", [0, 3])
def test_outbox_backlog_and_relay_lag_are_metrics(store: SqlLineageStore, engine: Engine, pending: int) -> None:
    for _ in range(pending):
        store.record_answer(make_answer())
    metrics = Metrics()
    metrics.watch_outbox(lambda: outbox_backlog(engine))
    text = generate_latest(metrics.prometheus).decode()
    assert f"ragline_outbox_pending {float(pending)}" in text
    lag = float(re.search(r"^ragline_relay_lag_seconds (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert (lag > 0) == bool(pending) and lag < 60
