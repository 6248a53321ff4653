"""Forget leaves no byte behind: a document holding a unique canary is indexed, answered
from (the answers quote it), landed in Iceberg, HNSW-built, then forgotten. Every byte
under RAGLINE_HOME (SQLite and its -wal, the Qdrant Edge shard with its WAL and
segments, the Iceberg warehouse, kept sources) holds no canary, with the stores closed
and again after a restart; on PostgreSQL every row of ragline's tables is scanned too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text

from lineage.tables import answers, forget_receipts
from schemas.documents import SourceDocument
from schemas.retrieval import SearchFilter
from services.answering import AnswerRequest
from services.application import Application
from services.wiring import Components

MakeComponents = Callable[..., Components]
QUESTION = "Which code word opens the archive vault on Fridays?"


def canary_document(canary: str) -> SourceDocument:
    text = (f"Archive vault procedures. The code word that opens the archive vault on Fridays is {canary}. "
            "Visitors sign the ledger at the front desk before entering. "
            f"Only the duty archivist may say {canary} aloud.")
    return SourceDocument("text://acme/vault.txt", text.encode(), "acme", document_id="vault-procedures")


def bystander() -> SourceDocument:
    return SourceDocument("text://acme/lunch.txt", b"The cafeteria serves lunch from noon until two every weekday.",
                          "acme", document_id="lunch")


def files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def rows_holding(url: str, needle: str) -> list[str]:
    """Every table of ragline's schema, every row as text (PostgreSQL)."""
    engine = create_engine(url)
    found = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            hits = conn.execute(text(f'SELECT count(*) FROM "{table}" AS t WHERE t::text LIKE :n'),
                                {"n": f"%{needle}%"}).scalar_one()
            if hits:
                found.append(f"{table}: {hits}")
    engine.dispose()
    return found


@pytest.mark.parametrize("kind", ["word", "pii-unredacted"])
def test_forget_leaves_no_byte_behind(kind: str, db_url: str, make_components: MakeComponents,
                                      tmp_path: Path) -> None:
    """``pii-unredacted``: the canary is an e-mail address ingested with redaction off, so
    the raw value really reaches every store before the erasure."""
    home = tmp_path / "home"
    overrides: dict[str, Any] = {"home": home}
    if kind == "word":
        canary = f"QUOKKA{uuid.uuid4().hex[:12].upper()}"
    else:
        canary = f"archivist.{uuid.uuid4().hex[:10]}@example.org"
        overrides["pii"] = {"mode": "off"}
    url = None
    if db_url.startswith("postgresql"):  # SQLite: the default database file under RAGLINE_HOME, scanned with it
        url = overrides["database_url"] = db_url

    application = Application(make_components(**overrides))
    for source in (canary_document(canary), bystander()):
        assert application.ingestion.ingest_document(source).status == "new"
    flt = SearchFilter(tenant="acme")
    answered = application.answering.answer(AnswerRequest(QUESTION, 3, flt, "/v1/query"))
    assert canary in answered.payload["answer"]  # the answer quotes the document
    stream = application.answering.open_stream(AnswerRequest(QUESTION + " Tell me.", 3, flt, "/v1/query"))
    events = list(stream)  # read to the end: the stream's rows are finalized before the restart
    assert any(canary in data.get("text", "") for _, data in events)
    application.maintenance.relay().drain()  # the events land in Iceberg
    application.maintenance.optimize()  # HNSW segments built from the points
    application.close()
    assert files_holding(home, canary.encode())  # the scan sees the canary before the erasure

    application = Application(make_components(**overrides))
    report = application.audit.forget("acme", "vault-procedures", actor="test")
    assert report.chunks_erased > 0 and report.answers_redacted == 2
    trace = application.audit.answer_trace(answered.payload["answer_id"], "acme")
    assert canary not in trace.record.answer_text and trace.record.response is not None
    assert canary not in str(trace.record.response)
    application.maintenance.relay().drain()
    application.close()
    assert files_holding(home, canary.encode()) == []
    if url:
        assert rows_holding(url, canary) == []

    # restarted: the stores open cleanly, the bystander still answers, and nothing came back
    application = Application(make_components(**overrides))
    lunch = application.answering.answer(AnswerRequest("When is lunch served?", 3, flt, "/v1/query"))
    assert "noon" in lunch.payload["answer"]
    assert application.answering.retrieve(QUESTION, 5, flt)[0][0].document_id == "lunch"
    application.maintenance.relay().drain()
    receipts = application.components.engine
    with receipts.connect() as conn:
        receipt = conn.execute(select(forget_receipts.c.receipt)).scalar_one()
        kept_ids = conn.execute(select(answers.c.answer_id, answers.c.answer_sha256)).all()
    assert receipt["actor"] == "test" and receipt["answers"]["rewritten"] == 2
    assert len(kept_ids) == 3  # answer ids and hashes stay: lineage still says which answers used it
    application.close()
    assert files_holding(home, canary.encode()) == []
    if url:
        assert rows_holding(url, canary) == []
