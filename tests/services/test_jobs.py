"""Background jobs live in the database, on SQLite and PostgreSQL: a finished job is still
readable by the next server, a job whose document failed is ``failed`` with its error,
another tenant's job is a 404, and a job left queued or running by a server killed with
SIGKILL is failed as interrupted once a server runs again."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.application import Application
from services.settings import ApiKey, ApiSettings

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
CORRUPT_PDF = b"%PDF-1.7\n" + b"\x00\xff garbage, no objects, no xref " * 40
INTERRUPTED = "interrupted: the server stopped before this job finished; re-submit the document"
KEYS = (ApiKey(key="acme", tenant="acme", roles=("reader", "ingester")), ApiKey(key="globex", tenant="globex"))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_for(get: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool],
             timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not done(job := get()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return job


def test_jobs_persist_report_failed_documents_and_stay_in_their_tenant(make_components: Any, db_url: str) -> None:
    api = ApiSettings(keys=KEYS, sync_ingest_max_bytes=0)  # every upload is a job
    with TestClient(create_app(Application(make_components(database_url=db_url, api=api)), run_relay=False)) as client:
        accepted = {}
        for name, data in (("overview.md", (SAMPLES / "ragline-overview.md").read_bytes()),
                           ("broken.pdf", CORRUPT_PDF)):
            response = client.post("/v1/documents", headers=auth("acme"), files={"file": (name, data)})
            assert response.status_code == 202, response.text
            accepted[name] = response.headers["Location"]
        finished = {name: wait_for(lambda url=url: client.get(url, headers=auth("acme")).json(),
                                   lambda job: job["status"] in ("succeeded", "failed"))
                    for name, url in accepted.items()}
        assert finished["overview.md"]["status"] == "succeeded" and finished["overview.md"]["result"]["chunks"] >= 1
        broken = finished["broken.pdf"]
        assert broken["status"] == "failed" and broken["error"], broken
        assert broken["result"]["status"] == "failed" and broken["error"] == broken["result"]["error"]
        for url in accepted.values():
            other = client.get(url, headers=auth("globex"))  # another tenant's job does not exist for it
            assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/jobs/0190c0de-0000-7000-8000-000000000000", headers=auth("acme")).status_code == 404
    # The next server (another process's runner, the same database) still knows them.
    with TestClient(create_app(Application(make_components(database_url=db_url, api=api)), run_relay=False)) as client:
        for name, url in accepted.items():
            assert client.get(url, headers=auth("acme")).json() == finished[name]


def test_jobs_of_a_killed_server_fail_as_interrupted(serve: Any, ragline_env: dict[str, str], db_url: str) -> None:
    ragline_env.update({"RAGLINE_DATABASE_URL": db_url, "RAGLINE_API__SYNC_INGEST_MAX_BYTES": "0",
                        "RAGLINE_API__JOB_HEARTBEAT_S": "0.2"})
    base, server = serve()
    with httpx.Client(base_url=base, timeout=30) as client:
        # One worker: the first job loads the extractors and the model, the others wait in line.
        urls = [client.post("/v1/documents", files={"file": (path.name, path.read_bytes())}).headers["Location"]
                for path in sorted(SAMPLES.glob("*.*")) if path.suffix in (".md", ".html", ".py")]
        before = {url: client.get(url).json()["status"] for url in urls}
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    assert "queued" in before.values(), before

    base, _ = serve()  # the restart
    with httpx.Client(base_url=base, timeout=30) as client:
        after = {url: wait_for(lambda url=url: client.get(url).json(), lambda job: job["status"] not in
                               ("queued", "running"), timeout_s=10) for url in urls}
    for url, status in before.items():
        job = after[url]
        if status in ("queued", "running"):
            assert job["status"] == "failed" and job["error"] == INTERRUPTED, job
            assert job["finished_at"] is not None
        else:
            assert job["status"] == status  # a finished job stays as it was
