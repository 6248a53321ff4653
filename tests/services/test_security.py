"""Issue 9's defects, each driven through the HTTP API against real stores (SQLite and
PostgreSQL): fetch refusals, body limits, edge validation, tag visibility on every
document endpoint, and the low-severity leftovers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from ingest.tables import documents
from lineage.tables import answers
from schemas import ids
from services.api.app import create_app
from services.application import Application
from services.ingestion import IngestTargets
from services.settings import ApiKey, ApiSettings, FetchSettings, Settings
from services.wiring import Components
from tests.conftest import BACKENDS, database_url

KEYS = {
    "admin": ("acme", ("admin",), ()),
    "ingest-hr": ("acme", ("ingester", "reader"), ("hr",)),
    "finance": ("acme", ("reader", "ingester", "auditor"), ("finance",)),
    "plain": ("acme", ("reader", "ingester"), ()),
}
HR_TEXT = "Salary bands for 2027: engineers level three earn between ninety and one hundred ten thousand."


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class _Internal(BaseHTTPRequestHandler):
    """Stands in for an internal service (metadata endpoint, admin page) on loopback."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.hits += 1  # type: ignore[attr-defined]
        body = b"internal secret: the vault root token is hunter2"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def internal() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Internal)
    httpd.hits = 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def app_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               local_embedder: Any) -> Iterator[tuple[TestClient, str]]:
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    urls = database_url(request.param, tmp)
    url = next(urls)
    keys = tuple(ApiKey(key=k, tenant=t, roles=r, access_tags=a) for k, (t, r, a) in KEYS.items())
    settings = Settings(home=tmp / "home", database_url=url,
                        api=ApiSettings(keys=keys, max_upload_bytes=200_000, max_body_bytes=64 * 1024))
    comps = Components(settings)
    comps.__dict__["embedder"] = local_embedder
    with TestClient(create_app(Application(comps), run_relay=False)) as client:
        yield client, url
    next(urls, None)


def test_uri_on_a_private_address_is_refused_before_any_job(app_client: tuple[TestClient, str],
                                                            internal: ThreadingHTTPServer) -> None:
    client, _ = app_client
    port = internal.server_address[1]
    before = internal.hits  # type: ignore[attr-defined]
    for uri in (f"http://127.0.0.1:{port}/", f"http://2130706433:{port}/", f"http://[::1]:{port}/",
                "http://169.254.169.254/latest/meta-data/", f"http://localhost:{port}/metrics"):
        r = client.post("/v1/documents", json={"uri": uri}, headers=auth("plain"))
        assert r.status_code == 422, (uri, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "uri"
        assert "non-public" in r.json()["detail"] or "resolve" in r.json()["detail"]
    assert internal.hits == before  # type: ignore[attr-defined]
    r = client.post("/v1/retrieve", json={"query": "vault root token", "k": 5}, headers=auth("plain"))
    assert all("hunter2" not in c["text"] for c in r.json()["chunks"])


def test_allow_list_lets_an_operator_admit_an_intranet_host(tmp_path: Path, local_embedder: Any,
                                                            internal: ThreadingHTTPServer) -> None:
    comps = Components(Settings(home=tmp_path, fetch=FetchSettings(allow=("127.0.0.1/32",))))
    comps.__dict__["embedder"] = local_embedder
    with TestClient(create_app(Application(comps), run_relay=False)) as client:
        r = client.post("/v1/documents", json={"uri": f"http://127.0.0.1:{internal.server_address[1]}/wiki"})
        assert r.status_code == 201, r.text


def test_bodies_are_capped_on_the_bytes_received(app_client: tuple[TestClient, str]) -> None:
    client, _ = app_client
    big_query = json.dumps({"query": "x" * 200_000, "k": 3}).encode()

    def chunked(data: bytes) -> Iterator[bytes]:  # no Content-Length: only the bytes received can tell
        for i in range(0, len(data), 16_384):
            yield data[i:i + 16_384]

    r = client.post("/v1/query", content=chunked(big_query), headers={**auth("plain"),
                                                                      "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    upload = json.dumps({"text": "y" * 2_000_000}).encode()
    r = client.post("/v1/documents", content=chunked(upload), headers={**auth("plain"),
                                                                       "Content-Type": "application/json"})
    assert r.status_code == 413
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + b"z" * 3_000_000 + f"\r\n--{boundary}--\r\n".encode()
    r = client.post("/v1/documents", content=chunked(body),
                    headers={**auth("plain"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    listed = client.get("/v1/documents?limit=500", headers=auth("admin")).json()["documents"]
    assert all(d["source_uri"] != "upload://acme/a.txt" and len(d["source_uri"]) < 1000 for d in listed)


def test_edge_validation_is_the_same_on_sqlite_and_postgresql(app_client: tuple[TestClient, str]) -> None:
    client, url = app_client
    r = client.post("/v1/documents", json={"text": "Incident reviews happen every Friday at noon.\x00 Bring notes."},
                    headers=auth("plain"))
    assert r.status_code == 201, r.text  # NUL in a document's text is stripped
    long_id = "r" * 300
    bad_trace = "00-" + "a" * 200
    r = client.post("/v1/query", json={"query": "When do incident reviews happen?"},
                    headers={**auth("plain"), "X-Request-ID": long_id, "traceparent": bad_trace})
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == long_id[:128]
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(select(answers.c.request_id, answers.c.traceparent)
                           .where(answers.c.answer_id == r.json()["answer_id"])).one()
    engine.dispose()
    assert row.request_id == long_id[:128] and row.traceparent is None  # invalid traceparent: ignored
    good_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = client.post("/v1/query", json={"query": "When do incident reviews happen?"},
                    headers={**auth("plain"), "traceparent": good_trace})
    assert r.status_code == 200
    r = client.post("/v1/query", json={"query": "when\x00 do reviews happen"}, headers=auth("plain"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a\x00b"}]},
                    headers=auth("plain"))
    assert r.status_code == 422
    for files, data in (({"file": ("a.txt", b"hello there")}, {"document_id": "d" * 65}),
                        (None, None)):
        if files is None:
            r = client.post("/v1/documents", json={"text": "hello", "document_id": "d" * 65}, headers=auth("plain"))
        else:
            r = client.post("/v1/documents", files=files, data=data, headers=auth("plain"))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "document_id"
        assert "SELECT" not in r.text and "INSERT" not in r.text


def test_tagged_documents_are_hidden_from_every_document_endpoint(app_client: tuple[TestClient, str]) -> None:
    client, _ = app_client
    r = client.post("/v1/documents", json={"text": HR_TEXT, "document_id": "salary-bands", "access_tags": ["hr"],
                                           "metadata": {"owner": "people-team"}}, headers=auth("ingest-hr"))
    assert r.status_code in (200, 201), r.text
    assert client.get("/v1/documents/salary-bands", headers=auth("ingest-hr")).status_code == 200
    assert client.get("/v1/documents/salary-bands", headers=auth("admin")).status_code == 200
    for key in ("finance", "plain"):
        assert client.get("/v1/documents/salary-bands", headers=auth(key)).status_code == 404
        listed = client.get("/v1/documents", headers=auth(key)).json()
        assert "salary-bands" not in {d["document_id"] for d in listed["documents"]}
        assert client.delete("/v1/documents/salary-bands", headers=auth(key)).status_code == 404
    everything = client.get("/v1/documents?limit=500", headers=auth("admin")).json()
    visible = client.get("/v1/documents?limit=500", headers=auth("finance")).json()
    assert visible["total"] == everything["total"] - 1  # the total counts only what the reader may see
    assert client.get("/v1/lineage/documents/salary-bands/answers", headers=auth("finance")).status_code == 404
    # an answer that used the HR document is hidden from a finance auditor
    answer = client.post("/v1/query", json={"query": "What do level three engineers earn?"},
                         headers=auth("ingest-hr")).json()
    assert any(c["document_id"] == "salary-bands" for c in answer["citations"])
    assert client.get(f"/v1/answers/{answer['answer_id']}", headers=auth("finance")).status_code == 404
    assert client.get(f"/v1/answers/{answer['answer_id']}", headers=auth("admin")).status_code == 200
    # still there for the ones who may see it
    assert client.get("/v1/documents/salary-bands", headers=auth("ingest-hr")).status_code == 200


def test_low_severity_leftovers(app_client: tuple[TestClient, str]) -> None:
    client, url = app_client
    assert client.get(f"/v1/documents?offset={2 ** 63}", headers=auth("plain")).status_code == 422
    deep = "[" * 50_000 + "]" * 50_000
    r = client.post("/v1/documents", files={"file": ("n.txt", b"nested metadata")},
                    data={"metadata": '{"a": ' + deep + "}"}, headers=auth("plain"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "metadata"
    r = client.post("/v1/documents", json={"text": "spoof", "source_uri": "upload://globex/handbook.pdf"},
                    headers=auth("plain"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "source_uri"
    r = client.post("/v1/documents", files={"file": ("../../etc/cron.d/x", b"climbing out of the namespace")},
                    headers=auth("plain"))
    assert r.status_code == 201, r.text
    engine = create_engine(url)
    with engine.connect() as conn:
        uri = conn.execute(select(documents.c.source_uri)
                           .where(documents.c.document_id == r.json()["document_id"])).scalar_one()
    engine.dispose()
    assert uri == "upload://acme/x"


def test_a_text_file_with_nul_bytes_is_indexed_not_fatal(db_url: str, make_components: Any, tmp_path: Path) -> None:
    """On PostgreSQL a NUL in a text column aborted the whole folder run; NULs are stripped
    after extraction, the rest of the folder goes through, and no SQL is printed."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "nul.txt").write_bytes(b"Quarterly review notes\x00 for the platform team.\x00\n")
    (folder / "plain.txt").write_text("The platform team meets on Tuesdays.", encoding="utf-8")
    application = Application(make_components(database_url=db_url))
    run = application.ingestion.ingest(IngestTargets([str(folder)], "acme"))
    assert run.summary.documents["new"] == 2 and run.summary.errors == []
    record = application.ingestion.get_document("acme", ids.document_id("acme", str((folder / "nul.txt").resolve())))
    assert record is not None and record.status == "indexed"
