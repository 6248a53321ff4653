"""The lineage store's behaviour, on SQLite and PostgreSQL: one transaction per answer,
one event per answer (valid against its JSON Schema), streaming, the query-text policy."""

from __future__ import annotations

import json

import pytest
from lineage_records import make_answer
from sqlalchemy import Engine, func, select, update

from lineage import (
    AnswerStateError,
    DuplicateAnswerError,
    LineageStoreError,
    SqlLineageStore,
    parse,
    validate_event,
)
from lineage.tables import answer_documents, answer_sources, answers, outbox, outbox_pending
from schemas import ids
from schemas.lineage import ANSWER_EVENT_TYPE, RetrievedRef


def count(engine: Engine, table: object, *where: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def outbox_events(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.seq)).mappings()]


def test_one_answer_is_one_row_per_table_and_one_valid_event(store: SqlLineageStore, engine: Engine) -> None:
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    answer = make_answer(sources=5, documents=("doc-a", "doc-b"), traceparent=traceparent)
    store.record_answer(answer)

    assert count(engine, answers) == 1
    assert count(engine, answer_sources) == 5
    assert count(engine, answer_documents) == 2  # doc-a (ranks 1, 3, 5) and doc-b (2, 4)
    [row] = outbox_events(engine)
    assert (row["event_id"], row["event_type"]) == (answer.answer_id, ANSWER_EVENT_TYPE)
    with engine.connect() as conn:  # queued for the relay, unclaimed
        pending = conn.execute(select(outbox_pending)).mappings().one()
    assert (pending["seq"], pending["batch_id"]) == (row["seq"], None)
    event = parse(row["payload"])
    validate_event(event)
    assert event.get_id() == event.get_subject() == answer.answer_id
    assert event.get_source() == "/ragline/test/query-api"
    assert event.get_extension("tenant") == "acme"
    assert event.get_extension("traceparent") == answer.traceparent
    data = event.get_data()
    assert data["chunk_ids"] == [r.chunk_id for r in answer.retrieved]
    assert data["document_ids"] == ["doc-a", "doc-b"]
    assert data["answer_sha256"] == ids.text_hash(answer.answer_text)
    assert [r["rank"] for r in data["retrieved"]] == [1, 2, 3, 4, 5]


def test_find_answer_returns_what_was_recorded(store: SqlLineageStore) -> None:
    answer = make_answer()
    store.record_answer(answer)
    assert store.find_answer("acme", answer.answer_id) == answer
    assert store.find_answer("other-tenant", answer.answer_id) is None


def test_a_second_answer_with_the_same_id_is_refused(store: SqlLineageStore, engine: Engine) -> None:
    answer = make_answer(answer_id=ids.answer_id("acme", "idem-key-1"))
    store.record_answer(answer)
    with pytest.raises(DuplicateAnswerError):
        store.record_answer(answer.model_copy(update={"answer_text": "a different answer"}))
    assert count(engine, answers) == 1
    assert count(engine, outbox) == 1


def test_a_failed_transaction_leaves_nothing(store: SqlLineageStore, engine: Engine) -> None:
    good = make_answer(sources=2)
    clash = [*good.retrieved, RetrievedRef(**(good.retrieved[0].model_dump() | {"chunk_id": "x"}))]  # rank 1 twice
    with pytest.raises(LineageStoreError):
        store.record_answer(good.model_copy(update={"retrieved": clash}))
    assert count(engine, answers) == count(engine, answer_sources) == count(engine, outbox) == 0


def test_an_answer_not_keeping_its_query_keeps_only_the_hash(store: SqlLineageStore, engine: Engine) -> None:
    store.record_answer(make_answer("private", store_query_text=False))
    store.record_answer(make_answer("acme", store_query_text=False))
    with engine.connect() as conn:
        stored = conn.execute(select(answers.c.query, answers.c.query_sha256)).all()
    assert [q for q, _ in stored] == [None, None]
    for row in outbox_events(engine):
        data = parse(row["payload"]).get_data()
        assert data["query"] is None and len(data["query_sha256"]) == 64
        validate_event(parse(row["payload"]))


def test_stream_rows_exist_before_the_first_byte_and_the_event_enters_at_the_end(
        store: SqlLineageStore, engine: Engine) -> None:
    begun = make_answer(status="streaming", answer_text="", response=None,
                        retrieved=[r.model_copy(update={"cited": False}) for r in make_answer().retrieved])
    store.begin_stream(begun)
    assert count(engine, answers, answers.c.status == "streaming") == 1
    assert count(engine, answer_sources) == 5
    assert count(engine, outbox) == 0

    cut_short = begun.model_copy(update={
        "status": "incomplete", "answer_text": "Within 15",
        "retrieved": [r.model_copy(update={"cited": r.rank == 2}) for r in begun.retrieved]})
    store.finish_stream(cut_short)
    assert count(engine, answers, answers.c.status == "incomplete") == 1
    assert count(engine, answer_sources, answer_sources.c.cited) == 1
    assert count(engine, answer_documents, answer_documents.c.cited) == 1
    [row] = outbox_events(engine)
    event = parse(row["payload"])
    validate_event(event)
    assert event.get_data()["status"] == "incomplete"
    assert event.get_data()["answer_sha256"] == ids.text_hash("Within 15")

    with pytest.raises(AnswerStateError):
        store.finish_stream(cut_short.model_copy(update={"status": "complete"}))
    with pytest.raises(AnswerStateError):
        store.finish_stream(make_answer())  # never begun
    assert count(engine, outbox) == 1


def test_concurrent_finishers_produce_one_event(store: SqlLineageStore, engine: Engine) -> None:
    """The CAS on status='streaming': of two finishers exactly one wins."""
    begun = make_answer(status="streaming")
    store.begin_stream(begun)
    with engine.begin() as conn:  # a racing finisher committed first
        conn.execute(update(answers).where(answers.c.answer_id == begun.answer_id).values(status="complete"))
    with pytest.raises(AnswerStateError):
        store.finish_stream(begun.model_copy(update={"status": "complete"}))
    assert count(engine, outbox) == 0


def test_every_event_in_a_mixed_burst_is_schema_valid(store: SqlLineageStore, engine: Engine) -> None:
    for n in range(20):
        store.record_answer(make_answer(sources=n % 6, status="no_answer" if n % 6 == 0 else "complete"))
    rows = outbox_events(engine)
    assert len(rows) == count(engine, answers) == 20
    for row in rows:
        validate_event(parse(row["payload"]))
        assert json.loads(row["payload"])["specversion"] == "1.0"
