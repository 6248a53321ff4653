"""Each answer's lineage says how its chunks were retrieved: the optional ``retrieval`` object
of the answer event (mode, fusion, reranker, MMR), valid against the JSON Schema, and the
``retrieval_mode`` / ``reranker`` / ``mmr_lambda`` columns of the Iceberg table, added to older
tables by schema evolution. Events from before hybrid search stay valid and land with nulls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lineage_records import make_answer
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema

from lineage import (
    IcebergLanding,
    OutboxEvent,
    SqlLineageStore,
    build_answer_event,
    default_catalog_properties,
    serialize,
)
from lineage.errors import InvalidEventError
from lineage.events import validate_event
from lineage.iceberg import ANSWER_SCHEMA, ANSWER_TABLE
from services.db import make_engine, migrate

HYBRID = {"mode": "hybrid", "candidates": 15, "reranker": "none", "collapse_duplicates": True, "group_by": None,
          "sparse": "bm25-v1", "fusion": {"method": "rrf", "k": 60, "prefetch_limit": 100, "weights": None}}


def outbox_event(seq: int, retrieval: dict[str, object] | None) -> OutboxEvent:
    event = build_answer_event(make_answer(retrieval=retrieval), deployment="test", keep_query_text=True)
    return OutboxEvent(seq, event.get_id(), event.get_type(), "acme", datetime.now(UTC), serialize(event))


def test_the_answer_event_carries_the_retrieval_parameters() -> None:
    event = build_answer_event(make_answer(retrieval=HYBRID), deployment="test", keep_query_text=True)
    validate_event(event)
    assert event.get_data()["retrieval"]["fusion"] == {"method": "rrf", "k": 60, "prefetch_limit": 100,
                                                      "weights": None}
    legacy = build_answer_event(make_answer(), deployment="test", keep_query_text=True)
    validate_event(legacy)  # optional: answers recorded before hybrid search stay valid
    assert "retrieval" not in legacy.get_data()


def test_an_unknown_mode_is_refused_by_the_schema() -> None:
    event = build_answer_event(make_answer(retrieval=HYBRID | {"mode": "fuzzy"}), deployment="test",
                               keep_query_text=True)
    with pytest.raises(InvalidEventError, match="retrieval"):
        validate_event(event)


def test_an_older_iceberg_table_gains_the_columns_and_lands_both_kinds(tmp_path: Path) -> None:
    properties = default_catalog_properties(tmp_path / "lake")
    catalog = load_catalog("old", **properties)
    catalog.create_namespace("lineage")
    older = Schema(*[f for f in ANSWER_SCHEMA.fields if f.name not in ("retrieval_mode", "reranker", "mmr_lambda")],
                   identifier_field_ids=[1])
    catalog.create_table("lineage.answer_events", schema=older)

    lake = IcebergLanding("old", properties).open()  # evolves the table created by an older ragline
    names = lake.table(ANSWER_TABLE).schema().column_names
    assert "retrieval_mode" in names and "reranker" in names and "mmr_lambda" in names
    reranked = HYBRID | {"reranker": "http-rerank:cohere:rerank-v3"}
    assert lake.deliver("b1", [outbox_event(1, HYBRID), outbox_event(2, None), outbox_event(3, reranked),
                               outbox_event(4, HYBRID | {"mmr": 0.5})]) == 4

    rows = lake.table(ANSWER_TABLE).scan().to_arrow().sort_by("outbox_seq").to_pylist()
    assert [(r["retrieval_mode"], r["reranker"], r["mmr_lambda"]) for r in rows] == [
        ("hybrid", "none", None), (None, None, None), ("hybrid", "http-rerank:cohere:rerank-v3", None),
        ("hybrid", "none", 0.5)]


def test_a_table_from_before_mmr_gains_its_column(tmp_path: Path) -> None:
    properties = default_catalog_properties(tmp_path / "lake")
    catalog = load_catalog("old", **properties)
    catalog.create_namespace("lineage")
    catalog.create_table("lineage.answer_events", schema=Schema(
        *[f for f in ANSWER_SCHEMA.fields if f.name != "mmr_lambda"], identifier_field_ids=[1]))
    lake = IcebergLanding("old", properties).open()
    assert lake.deliver("b1", [outbox_event(1, HYBRID | {"mmr": 1.0}), outbox_event(2, HYBRID)]) == 2
    rows = lake.table(ANSWER_TABLE).scan().to_arrow().sort_by("outbox_seq").to_pylist()
    assert [r["mmr_lambda"] for r in rows] == [1.0, None]


def test_an_mmr_lambda_outside_0_1_is_refused_by_the_schema() -> None:
    validate_event(build_answer_event(make_answer(retrieval=HYBRID | {"mmr": 0.3}), deployment="test",
                                      keep_query_text=True))
    event = build_answer_event(make_answer(retrieval=HYBRID | {"mmr": 1.5}), deployment="test", keep_query_text=True)
    with pytest.raises(InvalidEventError, match="retrieval"):
        validate_event(event)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlLineageStore]:
    engine = make_engine(db_url)
    migrate(engine)
    yield SqlLineageStore(engine, deployment="test")
    engine.dispose()


def test_the_answers_row_keeps_the_retrieval_parameters(store: SqlLineageStore) -> None:
    answer = make_answer(retrieval=HYBRID)
    store.record_answer(answer)
    found = store.find_answer("acme", answer.answer_id)
    assert found is not None and found.retrieval == HYBRID
    legacy = make_answer()
    store.record_answer(legacy)
    assert store.find_answer("acme", legacy.answer_id).retrieval is None  # type: ignore[union-attr]


def test_a_stream_finalized_by_the_relay_keeps_its_retrieval_in_the_event(store: SqlLineageStore) -> None:
    from sqlalchemy import select

    from lineage import parse
    from lineage.tables import outbox

    answer = make_answer(status="streaming", retrieval=HYBRID, created_at=datetime.now(UTC) - timedelta(hours=1))
    store.begin_stream(answer)
    assert store.finalize_stale_streams(older_than_s=60) == [answer.answer_id]
    with store._engine.connect() as conn:  # noqa: SLF001 - the outbox row is what the relay sends
        payload = conn.execute(select(outbox.c.payload).where(outbox.c.event_id == answer.answer_id)).scalar_one()
    data = parse(payload).get_data()
    assert data["status"] == "incomplete" and data["retrieval"] == HYBRID
