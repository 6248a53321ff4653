"""Outbox -> Iceberg: counts agree after a drain, landing is idempotent, batches by count
and age, compaction keeps every row, and the tables read with pyiceberg and DuckDB."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow.compute as pc
import pytest
from lineage_records import make_answer
from sqlalchemy import Engine, func, insert, select, update

from lineage import (
    AnswerStateError,
    IcebergLanding,
    OutboxEvent,
    OutboxRelay,
    RelayReport,
    RelayWorker,
    SqlLineageStore,
)
from lineage.iceberg import ANSWER_TABLE, BATCH_PROPERTY, DOCUMENT_TABLE
from lineage.tables import answers, outbox, outbox_pending
from schemas import ids
from schemas.lineage import DocumentChange


def sql_count(engine: Engine, table: object, *where: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def document_change(kind: str = "indexed", **fields: object) -> DocumentChange:
    values: dict[str, object] = {
        "kind": kind, "tenant": "acme", "document_id": "doc-a", "document_version": "b" * 64,
        "source_uri": "file:///corpus/doc-a.md", "collection": "minilm_384_fp", "occurred_at": datetime.now(UTC),
        "pipeline_fingerprint": "fp", "chunk_ids": ["c1", "c2"], "media_type": "text/markdown"}
    return DocumentChange(**(values | fields))  # type: ignore[arg-type]


def test_counts_agree_after_the_relay_drains(store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for n in range(25):
        store.record_answer(make_answer(created_at=yesterday if n % 5 == 0 else None))
    store.record_document_change(document_change())
    store.record_document_change(document_change())  # the same change again: one event
    store.record_document_change(document_change("deleted", chunk_ids=[]))

    report = OutboxRelay(engine, lake, batch_size=10).drain()

    assert report.delivered == 27 and report.written == 27 and report.batches == 3
    assert sql_count(engine, answers) == 25 == lake.count(ANSWER_TABLE)
    assert sql_count(engine, outbox) == 27
    assert sql_count(engine, outbox_pending) == 0
    assert lake.count(DOCUMENT_TABLE) == 2
    landed = lake.table(ANSWER_TABLE).scan().to_arrow()  # the pyiceberg read an auditor would do
    with engine.connect() as conn:
        assert sorted(landed["event_id"].to_pylist()) == sorted(conn.execute(select(answers.c.answer_id)).scalars())
    partitions = lake.table(ANSWER_TABLE).inspect.partitions().to_pylist()
    assert len(partitions) == 2  # partitioned by day of event time


def test_redelivering_a_landed_batch_adds_no_row(store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    """A relay died after its Iceberg commit and before marking the rows sent: whoever
    takes the batch over delivers it again, and Iceberg gains nothing."""
    for _ in range(12):
        store.record_answer(make_answer())
    OutboxRelay(engine, lake).drain()
    [batch_id] = [s.summary.get(BATCH_PROPERTY) for s in lake.table(ANSWER_TABLE).snapshots()]
    with engine.begin() as conn:  # the crash: rows still pending under that batch, claimed long ago
        claimed = datetime.now(UTC) - timedelta(hours=1)
        rows = conn.execute(select(outbox.c.seq, outbox.c.created_at)).all()
        conn.execute(insert(outbox_pending), [{"seq": seq, "batch_id": batch_id, "claimed_at": claimed,
                                               "created_at": created} for seq, created in rows])

    report = OutboxRelay(engine, lake, claim_timeout_s=60).drain()

    assert (report.taken_over, report.delivered, report.written) == (1, 12, 0)
    assert lake.count(ANSWER_TABLE) == 12
    assert sql_count(engine, outbox_pending) == 0


def test_a_fresh_claim_of_another_relay_is_left_alone(
        store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    for _ in range(3):
        store.record_answer(make_answer())
    with engine.begin() as conn:  # another live relay is delivering these right now
        conn.execute(update(outbox_pending).values(batch_id="other-relay-batch", claimed_at=datetime.now(UTC)))
    assert OutboxRelay(engine, lake, claim_timeout_s=60).drain().delivered == 0
    assert lake.count(ANSWER_TABLE) == 0


def test_duplicates_inside_a_batch_land_once(lake: IcebergLanding, store: SqlLineageStore, engine: Engine) -> None:
    store.record_answer(make_answer())
    with engine.connect() as conn:
        row = conn.execute(select(outbox)).mappings().one()
    event = OutboxEvent(row["seq"], row["event_id"], row["event_type"], row["tenant"], row["event_time"],
                        row["payload"])
    assert lake.deliver("batch-1", [event, event]) == 1
    assert lake.deliver("batch-1", [event]) == 0
    assert lake.count(ANSWER_TABLE) == 1
    summaries = [s.summary.get(BATCH_PROPERTY) for s in lake.table(ANSWER_TABLE).snapshots()]
    assert summaries == ["batch-1"]


def test_batches_by_count_and_by_age(store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    relay = OutboxRelay(engine, lake, batch_size=10, max_age_s=3600)
    for _ in range(9):
        store.record_answer(make_answer())
    assert relay.run_once().delivered == 0  # neither full nor old
    store.record_answer(make_answer())
    assert relay.run_once().delivered == 10  # full
    store.record_answer(make_answer())
    assert OutboxRelay(engine, lake, batch_size=10, max_age_s=0).run_once().delivered == 1  # old enough
    assert lake.count(ANSWER_TABLE) == 11


def test_compaction_keeps_every_row_in_one_file_per_day(
        store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    relay = OutboxRelay(engine, lake, batch_size=3)
    for _ in range(12):
        store.record_answer(make_answer())
    relay.drain()
    table = lake.table(ANSWER_TABLE)
    assert len(table.inspect.files()) == 4
    [report, _] = lake.compact()
    assert (report.files_before, report.files_after) == (4, 1)
    table = lake.table(ANSWER_TABLE)
    assert len(table.inspect.files()) == 1
    assert table.scan().to_arrow().num_rows == lake.count(ANSWER_TABLE) == 12
    store.record_answer(make_answer())  # landing goes on after a compaction
    assert relay.drain().written == 1 and lake.count(ANSWER_TABLE) == 13


def test_duckdb_reads_the_landed_table(store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    for n in range(6):
        store.record_answer(make_answer(documents=("doc-x",) if n % 2 else ("doc-y",)))
    OutboxRelay(engine, lake).drain()
    scan = lake.table(ANSWER_TABLE).scan()
    files = [task.file.file_path for task in scan.plan_files()]
    con = duckdb.connect()
    rows = con.execute("SELECT count(*) FROM read_parquet(?) WHERE list_contains(document_ids, 'doc-x')",
                       [files]).fetchone()
    assert rows == (3,)
    via_pyiceberg = scan.to_duckdb("answer_events").execute("SELECT count(DISTINCT event_id) FROM answer_events")
    assert via_pyiceberg.fetchone() == (6,)
    arrow = scan.to_arrow()
    assert pc.sum(pc.list_value_length(arrow["chunk_ids"])).as_py() == 6 * 5


def test_background_worker_drains_and_stops(store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    worker = RelayWorker(OutboxRelay(engine, lake, batch_size=1000, max_age_s=0), interval_s=0.05)
    worker.start()
    for _ in range(5):
        store.record_answer(make_answer())
    deadline = time.monotonic() + 20
    while lake.count(ANSWER_TABLE) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    store.record_answer(make_answer())
    worker.stop()  # lands what is still pending before returning
    assert not worker.alive
    assert lake.count(ANSWER_TABLE) == 6


def test_a_repeated_event_is_not_queued_again_once_sent(
        store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    store.record_document_change(change := document_change())
    assert OutboxRelay(engine, lake).drain().delivered == 1
    store.record_document_change(change)  # the same change written again after delivery
    assert sql_count(engine, outbox) == 1 and sql_count(engine, outbox_pending) == 0
    assert OutboxRelay(engine, lake).drain().delivered == 0
    assert lake.count(DOCUMENT_TABLE) == 1


def test_streams_left_by_a_dead_process_are_finalized_incomplete_once(
        store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    """A stream whose process died stays ``streaming``; once older than ``stream_stale_s`` a
    relay pass finalizes it as ``incomplete`` with its event, which lands exactly once. A
    younger one (maybe live on another replica) is left alone."""
    old = datetime.now(UTC) - timedelta(minutes=10)
    dead = make_answer("private", status="streaming", answer_text="", response=None, created_at=old,
                       store_query_text=False)
    live = make_answer(status="streaming", answer_text="", response=None)
    store.begin_stream(dead)
    store.begin_stream(live)
    relay = OutboxRelay(engine, lake, streams=store, stream_stale_s=300)

    report = relay.drain()

    assert (report.streams_finalized, report.delivered) == (1, 1)
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(answers.c.answer_id, answers.c.status)).all())
    assert statuses == {dead.answer_id: "incomplete", live.answer_id: "streaming"}
    landed = lake.table(ANSWER_TABLE).scan().to_arrow()
    assert landed["answer_id"].to_pylist() == [dead.answer_id] and landed["status"].to_pylist() == ["incomplete"]
    data = json.loads(landed["event"][0].as_py())["data"]
    assert data["query"] is None and data["query_sha256"] == ids.text_hash(dead.query)  # kept only as a hash
    assert data["answer_sha256"] == ids.text_hash("") and len(data["retrieved"]) == 5
    with pytest.raises(AnswerStateError):  # the dead stream can no longer finish
        store.finish_stream(dead.model_copy(update={"status": "complete"}))
    assert relay.drain() == RelayReport()  # nothing finalized or landed twice
    store.finish_stream(live.model_copy(update={"status": "complete", "answer_text": "Done [1]."}))
    assert relay.drain().delivered == 1 and lake.count(ANSWER_TABLE) == 2
