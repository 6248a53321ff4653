"""Edge cases of the answer path over HTTP: retrieved chunks with no sentence to quote give
the abstention (``no_answer``, "I don't know"), never an empty answer, streamed or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.application import Application

FRAGMENTS = "# Bays\n\nLot C.\n\nGate 4.\n\nBay 9.\n"  # retrievable, but not one sentence of 12 characters


@pytest.fixture
def client(make_components: Any) -> Iterator[TestClient]:
    with TestClient(create_app(Application(make_components()), run_relay=False)) as test_client:
        response = test_client.post("/v1/documents", json={"text": FRAGMENTS, "media_type": "text/markdown"})
        assert response.status_code == 201, response.text
        yield test_client


def test_chunks_without_a_sentence_give_the_abstention(client: TestClient) -> None:
    body = {"query": "Bays: lot C, gate 4, bay 9", "k": 3}
    retrieved = client.post("/v1/retrieve", json=body).json()["chunks"]
    assert retrieved and retrieved[0]["score"] >= 0.25  # evidence reached the generator
    answer = client.post("/v1/query", json=body).json()
    assert answer["no_answer"] is True and answer["answer"].startswith("I don't know") and answer["citations"] == []
    streamed = client.post("/v1/query", json=body | {"stream": True}).text
    assert '"no_answer": true' in streamed and "I don't know" in streamed
    lineage = client.app.state.application.components.lineage  # type: ignore[attr-defined]
    for answer_id in (answer["answer_id"], streamed.split('"answer_id": "')[1].split('"')[0]):
        record = lineage.find_answer("default", answer_id)
        assert record is not None and record.status == "no_answer" and record.answer_text.startswith("I don't know")
