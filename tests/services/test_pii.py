"""PII redaction end to end on real components: a document holding a card number and an
e-mail address is ingested through the ingestion use case, and neither value reaches the
index payload, the chunk archive, the embedding cache, the registry or the outbox events
(nor any byte under RAGLINE_HOME); a query's PII is redacted in the stored answer, unless
the tenant's policy keeps it; ``ragline ingest --json`` reports the totals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ingest.tables import embedding_cache
from lineage.tables import answers, chunk_archive, outbox
from schemas.retrieval import SearchFilter
from services.answering import AnswerRequest
from services.api.app import create_app
from services.application import Application
from services.ingestion import IngestTargets
from services.wiring import Components

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"
RAW = (EMAIL, CARD, CARD.replace(" ", ""), "jane.roe")
TICKET = f"""# Refund request from {EMAIL}

The customer {EMAIL} paid the annual subscription with the card {CARD} on 3 May.
Refunds for annual subscriptions are issued to the original card within five business days.

## Notes

Support confirmed the refund policy by e-mail and closed the ticket.
"""


@pytest.fixture
def ticket(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "ticket.md"  # outside RAGLINE_HOME: its bytes are not kept there
    path.parent.mkdir()
    path.write_text(TICKET)
    return path


class RecordingEmbedder:
    """The real model, noting every text it is sent (what the embedding cache keys hash)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.texts: list[str] = []
        self.model_version, self.dimensions = inner.model_version, inner.dimensions
        self.max_input_tokens, self.max_batch = inner.max_input_tokens, inner.max_batch

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return self._inner.embed_batch(texts)  # type: ignore[no-any-return]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)  # type: ignore[no-any-return]


def _ask(app: Application, query: str, tenant: str) -> tuple[dict[str, Any], Any]:
    outcome = app.answering.answer(AnswerRequest(query=query, k=5, search_filter=SearchFilter(tenant=tenant),
                                                 endpoint="/v1/query"))
    record = app.components.lineage.find_answer(tenant, outcome.payload["answer_id"])
    assert record is not None
    return outcome.payload, record


def _no_raw(where: str, text: str) -> None:
    for value in RAW:
        assert value not in text, f"{value!r} found in {where}"


def test_no_raw_value_is_stored_anywhere(make_components: Any, ticket: Path) -> None:
    comps: Components = make_components()
    embedder = comps.__dict__["embedder"] = RecordingEmbedder(comps.embedder)
    app = Application(comps)
    run = app.ingestion.ingest(IngestTargets([str(ticket)], tenant="t"))
    assert run.summary.documents["new"] == 1
    embedded = list(embedder.texts)  # what the embedding provider was sent
    assert embedded
    for text in embedded:
        _no_raw("a text sent to the embedder", text)
    assert run.summary.pii_redacted["card"] == 1 and run.summary.pii_redacted["email"] >= 2

    # index payload: every chunk as retrieval returns it
    chunks, _ = app.answering.retrieve("refund to the original card", 50, SearchFilter(tenant="t"), checked=False)
    assert chunks and any("[CARD]" in c.text for c in chunks) and any("[EMAIL]" in c.text for c in chunks)
    for chunk in chunks:
        _no_raw("the index payload", chunk.model_dump_json())

    with comps.engine.connect() as conn:
        archived = conn.execute(select(chunk_archive.c.text)).scalars().all()
        cached = set(conn.execute(select(embedding_cache.c.text_sha256)).scalars())
        events = conn.execute(select(outbox.c.event_type, outbox.c.payload)).all()
    assert len(archived) == len(chunks)
    for text in archived:
        _no_raw("the chunk archive", text)
    # the embedding cache keys hash exactly the (redacted) texts the embedder was sent
    assert cached == {hashlib.sha256(t.encode()).hexdigest() for t in embedded}

    record = comps.registry.get("t", chunks[0].document_id)
    assert record is not None and record.title == "Refund request from [EMAIL]"
    assert record.pii_redacted == run.summary.pii_redacted
    _no_raw("the registry", json.dumps([record.title, record.metadata, record.last_error]))

    indexed = [json.loads(p) for t, p in events if t == "ai.ragline.document.indexed.v1"]
    assert len(indexed) == 1 and indexed[0]["data"]["pii_redacted"] == run.summary.pii_redacted
    for _, payload in events:
        _no_raw("an outbox event", payload)

    # a query's PII: retrieval used the original, lineage stores it redacted
    payload, stored = _ask(app, f"Which card did {EMAIL} pay with?", "t")
    assert payload["citations"]
    assert stored.query == "Which card did [EMAIL] pay with?"
    _no_raw("the stored answer", stored.model_dump_json())
    with comps.engine.connect() as conn:
        for row in conn.execute(select(answers)).mappings():
            _no_raw("the answers table", json.dumps(dict(row), default=str))
        for _, payload_json in conn.execute(select(outbox.c.event_type, outbox.c.payload)).all():
            _no_raw("an outbox event", payload_json)

    # and not one byte under RAGLINE_HOME (SQLite and its WAL, the Qdrant Edge shard, the caches)
    home = comps.settings.home
    comps.close()
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in RAW:
                assert value.encode() not in data, f"{value!r} in {path.relative_to(home)}"


def test_tenant_policies_for_documents_and_queries(make_components: Any, ticket: Path) -> None:
    comps: Components = make_components(pii={
        "key": "k" * 32, "tenants": {"raw": {"queries": False}, "pseudo": {"mode": "pseudonymize"},
                                     "open": {"mode": "off"}}})
    app = Application(comps)
    for tenant in ("pseudo", "open"):
        app.ingestion.ingest(IngestTargets([str(ticket)], tenant=tenant))
    pseudo, _ = app.answering.retrieve("which card paid", 50, SearchFilter(tenant="pseudo"), checked=False)
    text = " ".join(c.text for c in pseudo)
    _no_raw("a pseudonymized chunk", text)
    tokens = {t for t in text.split() if t.startswith("[EMAIL:")}
    assert len({t.rstrip(".,") for t in tokens}) == 1  # the same address, the same pseudonym
    opened, _ = app.answering.retrieve("which card paid", 50, SearchFilter(tenant="open"), checked=False)
    assert EMAIL in " ".join(c.text for c in opened)  # this tenant's policy: no redaction

    _, kept = _ask(app, f"Which card did {EMAIL} use?", "raw")
    assert kept.query == f"Which card did {EMAIL} use?"  # the tenant keeps its query text
    _, pseudonymized = _ask(app, f"Which card did {EMAIL} use?", "pseudo")
    assert pseudonymized.query.startswith("Which card did [EMAIL:") and EMAIL not in pseudonymized.query
    assert pseudonymized.query.split()[3] in tokens  # the query's pseudonym matches the document's


def test_api_document_view_shows_the_counts(make_components: Any) -> None:
    with TestClient(create_app(Application(make_components()), run_relay=False)) as client:
        created = client.post("/v1/documents", json={"text": TICKET, "media_type": "text/markdown"})
        assert created.status_code == 201, created.text
        document_id = created.json()["document_id"]
        view = client.get(f"/v1/documents/{document_id}").json()
    assert view["pii_redacted"]["card"] == 1 and view["pii_redacted"]["email"] >= 2
    assert view["title"] == "Refund request from [EMAIL]"


def test_cli_ingest_json_reports_the_totals(tmp_path: Path, ticket: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ragline"), "ingest", str(ticket), "--json"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**clean, "RAGLINE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["pii_redacted"]["card"] == 1 and report["pii_redacted"]["email"] >= 2
