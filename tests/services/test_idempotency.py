"""Idempotency-Key over HTTP, on SQLite and PostgreSQL: a retried request replays the
recorded answer; the same key with a different request is a 422 problem, never the
earlier answer (the request's fingerprint is stored with the answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lineage.tables import answers
from services.api.app import create_app
from services.application import Application
from services.settings import ApiKey, ApiSettings

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
QUESTION = "What does re-ingesting an unchanged document cost?"
KEYS = (ApiKey(key="reader", tenant="acme", roles=("reader", "ingester")),
        ApiKey(key="finance", tenant="acme", access_tags=("finance",)))


def headers(key: str, idempotency_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}


@pytest.fixture
def client(make_components: Any, db_url: str) -> Iterator[TestClient]:
    comps = make_components(database_url=db_url, api=ApiSettings(keys=KEYS))
    with TestClient(create_app(Application(comps), run_relay=False)) as test_client:
        response = test_client.post("/v1/documents", headers={"Authorization": "Bearer reader"}, files={
            "file": ("ragline-overview.md", (SAMPLES / "ragline-overview.md").read_bytes())})
        assert response.status_code == 201, response.text
        yield test_client


def assert_reuse_refused(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in response.json()["detail"]


def test_same_key_same_request_replays(client: TestClient) -> None:
    first = client.post("/v1/query", headers=headers("reader", "k-1"), json={"query": QUESTION, "k": 3})
    again = client.post("/v1/query", headers=headers("reader", "k-1"), json={"query": QUESTION, "k": 3})
    assert first.status_code == again.status_code == 200
    assert again.json()["answer_id"] == first.json()["answer_id"]
    assert again.json()["answer"] == first.json()["answer"] and not first.json()["no_answer"]
    engine = client.app.state.application.components.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        stored = conn.execute(select(answers.c.request_fingerprint)).scalars().all()
    assert len(stored) == 1 and len(stored[0]) == 64


def test_same_key_different_request_is_refused(client: TestClient) -> None:
    first = client.post("/v1/query", headers=headers("reader", "k-2"), json={"query": QUESTION, "k": 3}).json()
    for body in ({"query": "How are answers made auditable?", "k": 3},  # another question
                 {"query": QUESTION, "k": 4},  # another k
                 {"query": QUESTION, "k": 3, "filters": {"document_ids": ["x"]}}):  # other filters
        assert_reuse_refused(client.post("/v1/query", headers=headers("reader", "k-2"), json=body))
    # Another reader of the tenant with other access tags searches other chunks: not the same request.
    assert_reuse_refused(client.post("/v1/query", headers=headers("finance", "k-2"), json={"query": QUESTION, "k": 3}))
    # The same key on the chat endpoint is another request too.
    assert_reuse_refused(client.post("/v1/chat/completions", headers=headers("reader", "k-2"),
                                     json={"messages": [{"role": "user", "content": QUESTION}], "k": 3}))
    replay = client.post("/v1/query", headers=headers("reader", "k-2"), json={"query": QUESTION, "k": 3}).json()
    assert (replay["answer_id"], replay["answer"], replay["citations"]) == (
        first["answer_id"], first["answer"], first["citations"])


def test_chat_conversation_is_part_of_the_request(client: TestClient) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    first = client.post("/v1/chat/completions", headers=headers("reader", "c-1"), json={"messages": messages})
    assert first.status_code == 200, first.text
    again = client.post("/v1/chat/completions", headers=headers("reader", "c-1"),
                        json={"messages": messages, "model": "anything", "temperature": 0.5})
    assert again.json()["id"] == first.json()["id"]
    other = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": QUESTION}]
    assert_reuse_refused(client.post("/v1/chat/completions", headers=headers("reader", "c-1"),
                                     json={"messages": other}))
