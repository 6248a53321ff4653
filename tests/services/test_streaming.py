"""Streamed answers and their lineage, on SQLite and PostgreSQL: the ``streaming`` rows are
committed before the response starts (a lineage failure is a 503 problem, never an empty
200); a client that goes away closes the upstream chat stream and leaves an ``incomplete``
answer with its event; the stale-stream threshold must outlive the generation timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fake_openai_server import FakeOpenAIChatServer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, text

from lineage import parse
from lineage.tables import answers, outbox
from services.api.app import create_app
from services.application import Application
from services.settings import GenerationSettings, LineageSettings, Settings

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
QUESTION = "What does re-ingesting an unchanged document cost?"


def ingest_overview(client: httpx.Client | TestClient) -> None:
    response = client.post("/v1/documents", files={
        "file": ("ragline-overview.md", (SAMPLES / "ragline-overview.md").read_bytes())})
    assert response.status_code == 201, response.text


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.fixture
def client(make_components: Any, db_url: str) -> Iterator[TestClient]:
    comps = make_components(database_url=db_url)
    # As a real client sees it: a server error after the response started is a cut stream, not an exception.
    with TestClient(create_app(Application(comps), run_relay=False), raise_server_exceptions=False) as test_client:
        ingest_overview(test_client)
        yield test_client


def test_lineage_failure_at_stream_start_is_a_503_before_any_byte(client: TestClient) -> None:
    engine: Engine = client.app.state.application.components.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:  # the lineage store breaks: one of the answer's tables is gone
        conn.execute(text("DROP TABLE answer_documents"))
    requests = [("/v1/query", {"query": QUESTION, "stream": True}),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}], "stream": True})]
    for path, body in requests:
        with client.stream("POST", path, json=body) as response:
            assert response.status_code == 503, path
            assert response.headers["content-type"] == "application/problem+json"
            problem = json.loads(response.read())
        assert problem["title"] == "Temporarily unavailable" and "answer_documents" in problem["detail"]
    assert count(engine, answers) == 0  # the failed transaction left nothing behind


def test_idempotency_key_reuse_on_a_stream_is_refused_before_any_byte(client: TestClient) -> None:
    headers = {"Idempotency-Key": "stream-1"}
    first = client.post("/v1/query", headers=headers, json={"query": QUESTION, "stream": True})
    assert first.status_code == 200 and "event: done" in first.text
    replay = client.post("/v1/query", headers=headers, json={"query": QUESTION})  # stream flag irrelevant
    assert replay.status_code == 200 and replay.json()["answer"]
    with client.stream("POST", "/v1/query", headers=headers,
                       json={"query": "How are answers made auditable?", "stream": True}) as response:
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"


def test_settings_keep_stale_streams_beyond_the_generation_timeout() -> None:
    assert Settings().lineage.stream_stale_s == 300 > Settings().generation.timeout_s
    with pytest.raises(ValidationError, match="RAGLINE_LINEAGE__STREAM_STALE_S=60 must exceed"):
        Settings(lineage=LineageSettings(stream_stale_s=60))
    assert Settings(lineage=LineageSettings(stream_stale_s=20), generation=GenerationSettings(timeout_s=10))


def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server, on a free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_client_disconnect_closes_the_upstream_stream(make_components: Any, db_url: str) -> None:
    with FakeOpenAIChatServer(chunks=100, interval_s=0.1) as upstream:  # 10 s if read to the end
        comps = make_components(database_url=db_url, generation=GenerationSettings(
            provider="openai", base_url=upstream.base_url, api_key="fake-key", timeout_s=30, max_retries=0))
        for base in serve_in_thread(create_app(Application(comps), run_relay=False)):
            with httpx.Client(base_url=base, timeout=30) as http:
                ingest_overview(http)
                with http.stream("POST", "/v1/query", json={"query": QUESTION, "stream": True}) as response:
                    assert response.status_code == 200
                    lines = response.iter_lines()
                    start = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
                    delta = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
                    assert delta["text"] == "Fake answer [1] "
                # The client is gone after one delta.
                closed = time.monotonic()
                assert upstream.disconnected.wait(5), "the upstream chat stream was not closed"
                assert not upstream.completed.is_set() and upstream.chunks_sent < upstream.chunks
                answer_id = start["answer_id"]
                while (status := _status(comps.engine, answer_id)) == "streaming" and time.monotonic() < closed + 5:
                    time.sleep(0.05)
                assert status == "incomplete"
                with comps.engine.connect() as conn:
                    payload = conn.execute(select(outbox.c.payload).where(outbox.c.event_id == answer_id)).scalar_one()
                assert parse(payload).get_data()["status"] == "incomplete"


def _status(engine: Engine, answer_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(answers.c.status).where(answers.c.answer_id == answer_id)).scalar_one())
