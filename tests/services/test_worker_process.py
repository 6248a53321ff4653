"""`ragline worker`, `ragline produce`, `ragline serve --worker` and `ragline ingest --prune`
as real processes against the real broker: a worker SIGKILLed mid-batch and restarted
indexes every document once (no duplicate points), SIGTERM finishes and commits the
batch in flight, the server hosts the worker (metrics on /metrics), the CLI's JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from worker_kafka import code, committed, indexed_count, kafka_env, kafka_settings, write_corpus

from services.application import Application
from services.streaming import ProduceRequest

RAGLINE = str(Path(sys.executable).with_name("ragline"))


def process_env(home: Path, kafka: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    return {**clean, "RAGLINE_HOME": str(home), **kafka}


def ragline(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAGLINE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def one_json(stdout: str) -> Any:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, f"--json prints one line, got {stdout!r}"
    return json.loads(lines[0])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, process: subprocess.Popen[str] | None = None,
             every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}: {process.stderr.read()}"
                                 if process.stderr else f"the process ended before {what}")
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setup(tmp_path: Path, kafka_bootstrap: str, make_components: Any) -> Callable[..., tuple[dict[str, str],
                                                                                          Application]]:
    """A home, this test's topics as a process environment, and an Application on the same
    home for producing and checking (it opens the index only when a check asks for it)."""
    def make(**extra: str) -> tuple[dict[str, str], Application]:
        kafka = kafka_env(kafka_bootstrap, **extra)
        home = tmp_path / "home"
        return process_env(home, kafka), Application(make_components(home=home, kafka=kafka_settings(kafka)))

    return make


def assert_no_duplicate_points(app: Application, expected_documents: int) -> None:
    comps = app.components
    records = list(comps.registry.indexed())
    assert len(records) == expected_documents
    for record in records:
        found = comps.index.count(record.collection, record.tenant, record.document_id)
        assert found == record.chunk_count, f"{record.source_uri}: {found} points for {record.chunk_count} chunks"
    assert comps.index.count(records[0].collection) == sum(r.chunk_count for r in records)


def test_a_worker_sigkilled_mid_batch_then_restarted_indexes_every_document_once(
        setup: Callable[..., tuple[dict[str, str], Application]], tmp_path: Path, kafka_bootstrap: str) -> None:
    env, app = setup(RAGLINE_KAFKA__WORKER_BATCH_SIZE="16")
    write_corpus(tmp_path / "corpus", 120)
    assert app.streaming.produce(ProduceRequest([str(tmp_path / "corpus")], "default")).upserts == 120
    home = Path(env["RAGLINE_HOME"])
    worker = subprocess.Popen([RAGLINE, "worker", "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: indexed_count(home) >= 40, 180, "40 documents indexed", worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = indexed_count(home)
    done = committed(kafka_bootstrap, env["RAGLINE_KAFKA__WORKER_GROUP"], env["RAGLINE_KAFKA__INGEST_TOPIC"])
    assert 0 <= done <= killed_at < 120

    again = ragline(env, "worker", "--until-idle", "3", "--json")
    assert again.returncode == 0, again.stderr
    report = one_json(again.stdout)
    assert report["consumed"] == 120 - done  # from the last commit on: indexed but uncommitted ones come again
    assert report["new"] == 120 - killed_at and report["new"] + report["unchanged"] == report["consumed"]
    assert report["dead_lettered"] == 0
    assert committed(kafka_bootstrap, env["RAGLINE_KAFKA__WORKER_GROUP"], env["RAGLINE_KAFKA__INGEST_TOPIC"]) == 120
    assert_no_duplicate_points(app, 120)
    app.close()


def test_sigterm_finishes_the_batch_in_flight_and_commits_it(
        setup: Callable[..., tuple[dict[str, str], Application]], tmp_path: Path, kafka_bootstrap: str) -> None:
    env, app = setup(RAGLINE_KAFKA__WORKER_BATCH_SIZE="32")
    write_corpus(tmp_path / "corpus", 96)
    app.streaming.produce(ProduceRequest([str(tmp_path / "corpus")], "default"))
    home = Path(env["RAGLINE_HOME"])
    worker = subprocess.Popen([RAGLINE, "worker", "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: indexed_count(home) >= 1, 180, "the first document indexed", worker, every_s=0.02)
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    first = one_json(stdout)
    assert 0 < first["consumed"] < 96, first  # it stopped after the batch in flight
    assert first["new"] == first["consumed"] == indexed_count(home)  # which it finished
    group, topic = env["RAGLINE_KAFKA__WORKER_GROUP"], env["RAGLINE_KAFKA__INGEST_TOPIC"]
    assert committed(kafka_bootstrap, group, topic) == first["consumed"]  # and committed

    rest = app.streaming.worker().run(until_idle_s=2)
    assert (rest.consumed, rest.new, rest.unchanged) == (96 - first["consumed"], 96 - first["consumed"], 0)
    assert_no_duplicate_points(app, 96)
    app.close()


def test_serve_hosts_the_worker_and_exports_its_metrics(
        setup: Callable[..., tuple[dict[str, str], Application]], tmp_path: Path, kafka_bootstrap: str) -> None:
    env, app = setup()
    app.close()  # the server owns the embedded index
    write_corpus(tmp_path / "corpus", 20)
    port = _free_port()
    server = subprocess.Popen([RAGLINE, "serve", "--worker", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(f"{base}/healthz"), 90, "the server", server, every_s=0.2)
        produced = ragline(env, "produce", str(tmp_path / "corpus"), "--json")  # beside the server: no index
        assert produced.returncode == 0, produced.stderr
        assert one_json(produced.stdout) == {"upserts": 20, "deletes": 0, "pruned": [], "failures": []}
        wait_for(lambda: httpx.get(f"{base}/v1/documents", params={"limit": 1}).json()["total"] == 20, 120,
                 "20 documents through the hosted worker", server, every_s=0.5)
        answer = httpx.post(f"{base}/v1/query", json={"query": "What is the secret code of item 5?"}, timeout=60)
        assert str(code(5)) in answer.json()["answer"]
        metrics = httpx.get(f"{base}/metrics").text
        assert 'ragline_worker_requests_total{result="new"} 20.0' in metrics
        assert "ragline_worker_consumer_lag" in metrics
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert committed(kafka_bootstrap, env["RAGLINE_KAFKA__WORKER_GROUP"], env["RAGLINE_KAFKA__INGEST_TOPIC"]) == 20


def test_ingest_prune_reports_pruned_in_json(setup: Callable[..., tuple[dict[str, str], Application]],
                                             tmp_path: Path) -> None:
    env, app = setup()
    app.close()
    paths = write_corpus(tmp_path / "corpus", 3)
    first = ragline(env, "ingest", str(tmp_path / "corpus"), "--json")
    assert first.returncode == 0, first.stderr
    paths[1].unlink()
    pruned = ragline(env, "ingest", str(tmp_path / "corpus"), "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    data = one_json(pruned.stdout)
    assert [p["source_uri"] for p in data["pruned"]] == [str(paths[1].resolve())]
    assert data["documents"]["unchanged"] == 2
    hits = one_json(ragline(env, "search", "secret code of item 1", "--json").stdout)
    assert str(paths[1].resolve()) not in {h["source_uri"] for h in hits}
    refused = ragline(env, "ingest", str(paths[0]), "--prune", "--json")
    assert refused.returncode == 1 and "nothing was pruned" in refused.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
