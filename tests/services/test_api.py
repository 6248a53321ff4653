"""The HTTP API driven over HTTP with real stores: TestClient (httpx) against the ASGI app,
the official ``openai`` SDK for /v1/chat/completions, and one real uvicorn process."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.application import Application
from services.settings import ApiKey, ApiSettings, Settings
from services.wiring import Components

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
KEYS = {
    "reader-acme": ("acme", ("reader",), ()),
    "admin-acme": ("acme", ("admin",), ()),
    "ingester-acme": ("acme", ("ingester",), ()),
    "auditor-acme": ("acme", ("auditor",), ()),
    "finance-acme": ("acme", ("reader",), ("finance",)),
    "all-tags-acme": ("acme", ("reader",), ("*",)),
    "admin-globex": ("globex", ("admin",), ()),
}
QUESTION = "What happens to the old version when a changed document is re-ingested?"
MEMO_QUESTION = "How quickly must a severity 1 incident be acknowledged?"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, local_embedder: Any) -> Iterator[TestClient]:
    keys = tuple(ApiKey(key=k, tenant=t, roles=r, access_tags=a) for k, (t, r, a) in KEYS.items())
    settings = Settings(home=tmp_path_factory.mktemp("api"), api=ApiSettings(keys=keys, sync_ingest_max_bytes=20_000))
    comps = Components(settings)
    comps.__dict__["embedder"] = local_embedder
    with TestClient(create_app(Application(comps))) as test_client:
        for path in sorted(SAMPLES.iterdir()):
            if path.suffix == ".pdf" or path.stat().st_size > 20_000:
                continue  # the PDF goes through the job path in its own test
            response = test_client.post("/v1/documents", headers=auth("ingester-acme"),
                                        files={"file": (path.name, path.read_bytes())})
            assert response.status_code == 201, response.text
        shared = "Severity 1 incidents must be acknowledged within {} by the duty manager of {}."
        for key, who, tags in (("admin-globex", "Globex", []), ("admin-acme", "the finance desk", ["finance"])):
            response = test_client.post("/v1/documents", headers=auth(key), json={
                "text": shared.format("2 hours", who), "source_uri": f"memo://{who}", "access_tags": tags})
            assert response.status_code == 201, response.text
        yield test_client


def test_retrieve_ranks_chunks_with_sources(client: TestClient) -> None:
    response = client.post("/v1/retrieve", headers=auth("reader-acme"), json={"query": QUESTION, "k": 3})
    assert response.status_code == 200, response.text
    chunks = response.json()["chunks"]
    assert [c["rank"] for c in chunks] == [1, 2, 3]
    assert chunks[0]["score"] >= chunks[-1]["score"]
    assert {"chunk_id", "document_id", "source_uri", "page_start", "page_end", "text"} <= set(chunks[0])
    doc = chunks[1]["document_id"]
    only = client.post("/v1/retrieve", headers=auth("reader-acme"),
                       json={"query": QUESTION, "k": 5, "filters": {"document_ids": [doc]}}).json()["chunks"]
    assert only and {c["document_id"] for c in only} == {doc}


def test_query_answers_with_verbatim_cited_sentences(client: TestClient) -> None:
    response = client.post("/v1/query", headers={**auth("reader-acme"), "X-Request-ID": "req-123"},
                           json={"query": QUESTION, "k": 4})
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "req-123"
    body = response.json()
    assert body["answer_id"] and not body["no_answer"]
    assert "deleted" in body["answer"] and body["citations"]
    unmarked = re.sub(r" \[\d+\]", "", body["answer"])
    for citation in body["citations"]:
        assert citation["quote"] in unmarked  # the extractive generator never invents text
    assert set(body["timings"]) >= {"embed_ms", "search_ms", "generate_ms", "lineage_ms", "total_ms"}
    record = client.app.state.application.components.lineage.find_answer("acme", body["answer_id"])  # type: ignore[attr-defined]
    assert record is not None and record.request_id == "req-123"


def test_query_without_relevant_chunks_says_so(client: TestClient) -> None:
    body = client.post("/v1/query", headers=auth("reader-acme"),
                       json={"query": "gluon confinement in lattice chromodynamics", "k": 3}).json()
    assert body["no_answer"] is True
    assert body["answer"].startswith("I don't know") and body["citations"] == []


def test_idempotency_key_returns_the_same_answer(client: TestClient) -> None:
    headers = {**auth("reader-acme"), "Idempotency-Key": "retry-42"}
    first = client.post("/v1/query", headers=headers, json={"query": QUESTION}).json()
    second = client.post("/v1/query", headers=headers, json={"query": QUESTION}).json()
    assert first["answer_id"] == second["answer_id"]
    assert first["answer"] == second["answer"] and first["citations"] == second["citations"]
    other_tenant = client.post("/v1/query", headers={**auth("admin-globex"), "Idempotency-Key": "retry-42"},
                               json={"query": QUESTION}).json()
    assert other_tenant["answer_id"] != first["answer_id"]


def test_query_streams_server_sent_events(client: TestClient) -> None:
    with client.stream("POST", "/v1/query", headers=auth("reader-acme"),
                       json={"query": QUESTION, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response.iter_lines())
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "delta" in names
    done = events[-1][1]
    assert done["answer_id"] == events[0][1]["answer_id"] and done["citations"]
    assert "".join(d["text"] for n, d in events if n == "delta") == done["answer"]
    record = client.app.state.application.components.lineage.find_answer("acme", done["answer_id"])  # type: ignore[attr-defined]
    assert record is not None and record.status == "complete"


def _sse_events(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line[6:])))
    return events


def test_openai_sdk_chat_completions(client: TestClient) -> None:
    sdk = openai.OpenAI(api_key="reader-acme", base_url="http://testserver/v1", http_client=client)
    completion = sdk.chat.completions.create(model="ragline", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}])
    answer_id = completion.model_extra["answer_id"]
    assert completion.id == f"chatcmpl-{answer_id}"
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "stop"
    assert completion.model_extra["citations"]
    stream = sdk.chat.completions.create(model="ragline", stream=True, messages=[
        {"role": "user", "content": "What is the incident runbook about?"},
        {"role": "assistant", "content": "It describes outages."},
        {"role": "user", "content": "and how fast is acknowledgement?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and len({c.id for c in chunks}) == 1
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop" and final.model_extra["citations"]
    assert final.id == f"chatcmpl-{final.model_extra['answer_id']}"


def test_tenants_never_see_each_other(client: TestClient) -> None:
    globex = client.post("/v1/retrieve", headers=auth("admin-globex"), json={"query": MEMO_QUESTION, "k": 20}).json()
    acme = client.post("/v1/retrieve", headers=auth("admin-acme"), json={"query": MEMO_QUESTION, "k": 20}).json()
    globex_docs = {c["document_id"] for c in globex["chunks"]}
    acme_docs = {c["document_id"] for c in acme["chunks"]}
    assert globex_docs and acme_docs and not globex_docs & acme_docs
    assert all("Globex" in c["text"] for c in globex["chunks"])
    doc_id = next(iter(globex_docs))
    assert client.get(f"/v1/documents/{doc_id}", headers=auth("admin-acme")).status_code == 404
    assert client.delete(f"/v1/documents/{doc_id}", headers=auth("admin-acme")).status_code == 404
    listing = client.get("/v1/documents", headers=auth("admin-globex")).json()
    assert listing["total"] == 1


def test_access_tags_filter_inside_the_tenant(client: TestClient) -> None:
    def sources(key: str) -> set[str]:
        body = client.post("/v1/retrieve", headers=auth(key), json={"query": MEMO_QUESTION, "k": 20}).json()
        return {c["source_uri"] for c in body["chunks"]}

    assert "memo://the finance desk" in sources("admin-acme")
    assert "memo://the finance desk" in sources("finance-acme")
    assert "memo://the finance desk" in sources("all-tags-acme")
    untagged_reader = sources("reader-acme")
    assert "memo://the finance desk" not in untagged_reader
    assert any("ragline-overview" in s for s in untagged_reader)


def test_documents_crud_and_jobs(client: TestClient) -> None:
    headers = auth("ingester-acme")
    body = client.post("/v1/documents", headers=headers, json={
        "text": "# Parking\n\nVisitors park in lot C behind the warehouse.", "media_type": "text/markdown",
        "source_uri": "memo://parking.md", "metadata": {"owner": "facilities"}}).json()
    assert body["status"] == "new" and body["chunks"] >= 1
    again = client.post("/v1/documents", headers=headers, json={
        "text": "# Parking\n\nVisitors park in lot C behind the warehouse.", "media_type": "text/markdown",
        "source_uri": "memo://parking.md"})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    doc = client.get(f"/v1/documents/{body['document_id']}", headers=auth("reader-acme")).json()
    assert doc["status"] == "indexed" and doc["metadata"]["owner"] == "facilities"
    page = client.get("/v1/documents?limit=2&offset=0", headers=auth("reader-acme")).json()
    assert len(page["documents"]) == 2 and page["total"] >= 5
    assert client.delete(f"/v1/documents/{body['document_id']}", headers=headers).status_code == 204
    hits = client.post("/v1/retrieve", headers=auth("reader-acme"), json={"query": "where do visitors park"}).json()
    assert all(c["document_id"] != body["document_id"] for c in hits["chunks"])
    pdf = (SAMPLES / "incident-runbook.pdf").read_bytes()
    big = pdf + b"\n%" + b"x" * 20_000  # over sync_ingest_max_bytes: becomes a job
    accepted = client.post("/v1/documents", headers=headers, files={"file": ("runbook.pdf", big)})
    assert accepted.status_code == 202 and accepted.headers["Location"].startswith("/v1/jobs/")
    for _ in range(200):
        job = client.get(accepted.headers["Location"], headers=auth("reader-acme")).json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded" and job["result"]["chunks"] >= 1, job


def test_errors_are_problem_details_naming_the_field(client: TestClient) -> None:
    cases = [
        ({"query": QUESTION, "k": 0}, "k"),
        ({"k": 3}, "query"),
        ({"query": QUESTION, "extra": 1}, "extra"),
        ({"query": "x" * 5000}, "query"),
        ({"query": QUESTION, "k": 500}, "k"),
        ({"query": QUESTION, "mmr": 1.5}, "mmr"),
        ({"query": QUESTION, "mmr": -0.1}, "mmr"),
    ]
    for payload, field in cases:
        response = client.post("/v1/query", headers=auth("reader-acme"), json=payload)
        assert response.status_code == 422, payload
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    bad_json = client.post("/v1/documents", headers=auth("ingester-acme"), json={"text": "a", "uri": "http://x"})
    assert bad_json.status_code == 422 and "exactly one" in bad_json.json()["detail"]


def test_mmr_is_a_request_parameter_of_every_query_endpoint(client: TestClient) -> None:
    def retrieve(**extra: object) -> list[str]:
        response = client.post("/v1/retrieve", headers=auth("reader-acme"), json={"query": QUESTION, "k": 4, **extra})
        assert response.status_code == 200, response.text
        return [c["chunk_id"] for c in response.json()["chunks"]]

    assert retrieve(mmr=1.0) == retrieve() and len(retrieve(mmr=0.2)) == 4
    answer = client.post("/v1/query", headers=auth("reader-acme"), json={"query": QUESTION, "mmr": 0.5}).json()
    chat = client.post("/v1/chat/completions", headers=auth("reader-acme"),
                       json={"messages": [{"role": "user", "content": QUESTION}], "mmr": 0.5}).json()
    lineage = client.app.state.application.components.lineage  # type: ignore[attr-defined]
    for answer_id in (answer["answer_id"], chat["answer_id"]):
        assert lineage.find_answer("acme", answer_id).retrieval["mmr"] == 0.5
    refused = client.post("/v1/chat/completions", headers=auth("reader-acme"),
                          json={"messages": [{"role": "user", "content": QUESTION}], "mmr": 2})
    assert refused.status_code == 422 and "mmr" in [e["field"] for e in refused.json()["errors"]]


def test_authentication_and_roles(client: TestClient) -> None:
    assert client.post("/v1/retrieve", json={"query": "x"}).status_code == 401
    assert client.post("/v1/retrieve", headers=auth("wrong"), json={"query": "x"}).status_code == 401
    forbidden = client.post("/v1/documents", headers=auth("reader-acme"), json={"text": "hello there"})
    assert forbidden.status_code == 403 and "ingester" in forbidden.json()["detail"]
    assert client.post("/v1/retrieve", headers={"X-API-Key": "reader-acme"}, json={"query": "x"}).status_code == 200


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"] == {"index": "ok", "database": "ok"}
    metrics = client.get("/metrics").text
    assert 'ragline_http_request_duration_seconds_count{method="POST",route="/v1/query"' in metrics
    assert "ragline_generation_duration_seconds" in metrics and "ragline_answers_total" in metrics


def test_real_uvicorn_process(serve: Any, ragline_env: dict[str, str], ragline_bin: str) -> None:
    subprocess.run([ragline_bin, "ingest", str(SAMPLES / "ragline-overview.md"), "--json"], env=ragline_env, check=True,
                   capture_output=True)
    base, _ = serve()
    body = httpx.post(f"{base}/v1/query", json={"query": "What does re-ingesting an unchanged document cost?"},
                      timeout=30).json()
    assert "no-op" in body["answer"] or "embedding" in body["answer"], body


def test_serve_refuses_public_bind_without_keys(ragline_env: dict[str, str], ragline_bin: str) -> None:
    result = subprocess.run([ragline_bin, "serve", "--host", "0.0.0.0"], env=ragline_env, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "without API keys" in result.stderr
