"""Lineage wired into the real service: ingest archives chunks and emits document events,
the answer path records lineage, and the CLI answers auditors (answers, show, replay,
relay, stats, forget) against the same RAGLINE_HOME."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ingest.sources import SourceOptions, read_path
from lineage import parse, validate_event
from lineage.tables import chunk_archive, outbox
from schemas.documents import SourceDocument
from schemas.lineage import DOCUMENT_INDEXED_EVENT_TYPE
from schemas.retrieval import SearchFilter
from services.answering import AnswerRequest
from services.application import Application
from services.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
QUESTION = "How quickly must a severity 1 incident be acknowledged?"


@pytest.fixture
def answered(make_components: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One home with two ingested samples and one real answer; its components closed again
    (the embedded index admits one process at a time), RAGLINE_HOME pointing at it."""
    home = tmp_path / "home"
    comps = make_components(home=home)
    pipeline = comps.pipeline()
    sources = [read_path(SAMPLES / name, SourceOptions("default")) for name in
               ("incident-runbook.pdf", "ragline-overview.md")]
    summary = pipeline.ingest(s for s in sources if isinstance(s, SourceDocument))
    assert summary.documents["new"] == 2, summary.errors
    request = AnswerRequest(QUESTION, 4, SearchFilter(tenant="default"), "/v1/query")
    outcome = Application(comps).answering.answer(request)
    record = comps.lineage.find_answer("default", outcome.payload["answer_id"])
    with comps.engine.connect() as conn:
        archived = conn.execute(select(chunk_archive.c.chunk_id)).scalars().all()
        events = [parse(p) for p in conn.execute(select(outbox.c.payload).order_by(outbox.c.seq)).scalars()]
    comps.close()
    monkeypatch.setenv("RAGLINE_HOME", str(home))
    return {"record": record, "archived": archived, "events": events, "settings": comps.settings}


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_ingest_archives_chunks_and_emits_valid_document_events(answered: dict[str, Any]) -> None:
    record = answered["record"]
    assert record is not None and record.retrieved
    assert {r.chunk_id for r in record.retrieved} <= set(answered["archived"])
    indexed = [e for e in answered["events"] if e.get_type() == DOCUMENT_INDEXED_EVENT_TYPE]
    assert len(indexed) == 2
    for event in answered["events"]:
        validate_event(event)
    assert sum(len(e.get_data()["chunk_ids"]) for e in indexed) == len(answered["archived"])


def test_the_cli_answers_auditors(answered: dict[str, Any]) -> None:
    record = answered["record"]
    top = record.retrieved[0]

    uses = cli("lineage", "answers", "--document", top.document_id)["answers"]
    assert [u["answer_id"] for u in uses] == [record.answer_id]
    assert {"answer_id", "created_at", "tenant", "document_version", "rank", "cited"} <= set(uses[0])

    shown = cli("lineage", "show", record.answer_id)
    assert shown["query"] == QUESTION
    assert [s["chunk_id"] for s in shown["retrieved"]] == [r.chunk_id for r in record.retrieved]
    assert all(s["text"] for s in shown["retrieved"])

    replayed = cli("lineage", "replay", record.answer_id)
    assert replayed["template_matches"] is True
    assert replayed["prompt_template_sha256"] == record.prompt_template_sha256
    evidence = [s for s in shown["retrieved"] if s["score"] >= answered["settings"].generation.min_score]
    assert all(s["text"] in replayed["messages"][-1]["content"] for s in evidence)

    assert cli("relay", "--once")["delivered"] == 3  # 2 documents indexed + 1 answer
    stats = cli("lineage", "stats")
    assert (stats["answers"], stats["outbox_pending"], stats["iceberg_answer_events"]) == (1, 0, 1)
    assert stats["answer_sources"] == len(record.retrieved)

    forgotten = cli("documents", "forget", top.document_id)
    assert forgotten["answer_ids"] == [record.answer_id] and forgotten["chunks_erased"] > 0
    after = cli("lineage", "show", record.answer_id)["retrieved"]
    assert all(s["text"] is None and s["forgotten"] for s in after if s["document_id"] == top.document_id)
    assert [s["chunk_id"] for s in after] == [r.chunk_id for r in record.retrieved]
    assert cli("relay", "--once")["delivered"] == 2  # deleted, then deleted+forgotten


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLINE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["lineage", "show", "no-such-answer"])
    assert result.exit_code != 0
    assert "not found" in str(result.exception)
