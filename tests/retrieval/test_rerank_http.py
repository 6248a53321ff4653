"""The HTTP rerank adapter against a fake rerank server (a paid API cannot run here): the
Cohere/Jina shape and the TEI shape, over real HTTP on loopback; refusals and malformed
answers are named errors, 5xx and 429 transient; and the answer path wired from settings
(RAGLINE_RETRIEVAL__RERANKER=http) reorders candidates and records the reranker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from retrieval.rerank import HttpReranker, RerankError
from schemas.documents import SourceDocument
from schemas.errors import TransientError
from schemas.retrieval import SearchFilter
from services.application import Application


class FakeRerankServer:
    """A fake of Cohere's /v2/rerank and TEI's /rerank: scores a text by the query words it
    holds. ``/status/<code>`` answers that status; ``/garbage`` answers malformed JSON."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if self.path.startswith("/status/"):
                    return self._send(int(self.path.rsplit("/", 1)[1]), {"message": "no"})
                if self.path == "/garbage":
                    return self._send(200, {"unexpected": True})
                words = set(body["query"].lower().split())
                texts = body.get("documents") or body.get("texts") or []
                scores = [len(words & set(t.lower().split())) / (1 + len(words)) for t in texts]
                order = sorted(range(len(texts)), key=lambda i: -scores[i])
                if self.path == "/rerank":  # TEI
                    return self._send(200, [{"index": i, "score": scores[i]} for i in order])
                return self._send(200, {"results": [{"index": i, "relevance_score": scores[i]} for i in order]})

            def _send(self, status: int, data: object) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRerankServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeRerankServer]:
    with FakeRerankServer() as server:
        yield server


TEXTS = ["backups are nightly", "the on-call acknowledges incidents", "incidents of severity one are paged"]


@pytest.mark.parametrize(("path", "api"), [("/v2/rerank", "cohere"), ("/rerank", "tei")])
def test_both_shapes_rank_best_first(fake: FakeRerankServer, path: str, api: str) -> None:
    reranker = HttpReranker(fake.url + path, model="rerank-v3.5", api=api, api_key="k")  # type: ignore[arg-type]
    results = reranker.rerank("severity one incidents", TEXTS)
    assert [r.index for r in results] == [2, 1, 0] and results[0].score > results[1].score
    sent = fake.requests[-1]
    assert sent["auth"] == "Bearer k"
    if api == "cohere":
        assert sent["body"]["documents"] == TEXTS and sent["body"]["model"] == "rerank-v3.5"
    else:
        assert sent["body"]["texts"] == TEXTS
    assert reranker.rerank("anything", []) == []


def test_refusals_are_named_and_overload_is_transient(fake: FakeRerankServer) -> None:
    with pytest.raises(RerankError, match="refused the request \\(400\\)"):
        HttpReranker(fake.url + "/status/400").rerank("q", TEXTS)
    for code in (429, 503):
        with pytest.raises(TransientError):
            HttpReranker(fake.url + f"/status/{code}").rerank("q", TEXTS)
    with pytest.raises(RerankError, match="unreadable"):
        HttpReranker(fake.url + "/garbage").rerank("q", TEXTS)
    with pytest.raises(TransientError):
        HttpReranker("http://127.0.0.1:9/rerank", timeout_s=1).rerank("q", TEXTS)


def test_the_answer_path_reranks_with_the_configured_endpoint(fake: FakeRerankServer, make_components: Any) -> None:
    app = Application(make_components(retrieval={"reranker": "http", "reranker_url": fake.url + "/v2/rerank",
                                                 "reranker_model": "fake-rerank", "rerank_top_n": 10}))
    for name, text in {"a": "Backups run nightly and are kept for a month.",
                       "b": "Severity one incidents page the on-call engineer at once.",
                       "c": "Expenses are reimbursed monthly."}.items():
        app.ingestion.ingest_document(SourceDocument(source_uri=f"mem://{name}", data=text.encode(),
                                                     document_id=name, media_type="text/plain"))
    chunks, timings, params = app.answering.retrieve_with_params("severity one incidents page", 3,
                                                                 SearchFilter(tenant="default"))
    assert chunks[0].document_id == "b" and "rerank_ms" in timings
    assert params["reranker"] == "http-rerank:cohere:fake-rerank" and params["rerank_top_n"] == 10
    assert len(fake.requests[-1]["body"]["documents"]) == 3
    plain, _ = app.answering.retrieve("severity one incidents page", 3, SearchFilter(tenant="default"), rerank=False)
    assert all(c.rank_score is not None and c.rank_score < 1 for c in plain)
