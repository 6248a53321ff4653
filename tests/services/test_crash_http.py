"""SIGKILL the real server during a burst of queries: after a restart (and the relay
draining) every answer a client received has its rows and exactly one Iceberg row. The
same for a streamed answer killed mid-stream: the relay finalizes it ``incomplete``."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from fake_openai_server import FakeOpenAIChatServer

from services.settings import Settings
from services.wiring import Components

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
QUESTIONS = ["What does re-ingesting an unchanged document cost?", "How are answers made auditable?",
             "What happens to the old version of a changed document?", "Which engines can read the lineage table?"]


def _burst(base: str, received: list[str], stop: threading.Event, worker: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        i = 0
        while not stop.is_set():
            try:
                response = client.post("/v1/query", json={"query": f"{QUESTIONS[i % 4]} ({worker}.{i})", "k": 3})
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200:
                received.append(response.json()["answer_id"])
            i += 1


def test_sigkill_mid_burst_keeps_every_received_answer(serve: Any, ragline_env: dict[str, str],
                                                        ragline_bin: str) -> None:
    env = ragline_env
    env.update({"RAGLINE_LINEAGE__RELAY__MAX_AGE_S": "0.2", "RAGLINE_LINEAGE__RELAY__INTERVAL_S": "0.2",
                "RAGLINE_LINEAGE__RELAY__CLAIM_TIMEOUT_S": "0"})
    subprocess.run([ragline_bin, "ingest", str(SAMPLES), "--json"], env=env, check=True, capture_output=True)
    base, server = serve()
    received: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_burst, args=(base, received, stop, w)) for w in range(4)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while len(received) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)  # mid-burst: requests and relay batches in flight
    server.wait(timeout=30)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    assert len(received) >= 40
    # The restart: a relay drains what the killed process left (including a claimed batch).
    subprocess.run([ragline_bin, "relay", "--once"], env=env, check=True, capture_output=True)
    comps = Components(Settings(home=Path(env["RAGLINE_HOME"])))
    try:
        for answer_id in received:
            record = comps.lineage.find_answer("default", answer_id)
            assert record is not None and record.status == "complete", answer_id
        landed = comps.lineage_lake.table("answer_events").scan(selected_fields=("answer_id",)).to_arrow()
        per_answer = Counter(landed.column("answer_id").to_pylist())
        assert all(per_answer[a] == 1 for a in received)
        assert max(per_answer.values()) == 1  # nothing landed twice
    finally:
        comps.close()
    stats = json.loads(subprocess.run([ragline_bin, "lineage", "stats", "--json"], env=env, check=True,
                                      capture_output=True, text=True).stdout)
    assert stats["outbox_pending"] == 0
    assert stats["answers"] == stats["iceberg_answer_events"] == len(per_answer)


def test_sigkill_mid_stream_lands_the_answer_once_as_incomplete(serve: Any, ragline_env: dict[str, str],
                                                                ragline_bin: str) -> None:
    env = ragline_env
    with FakeOpenAIChatServer(chunks=600, interval_s=0.1) as upstream:  # a minute-long answer
        env.update({"RAGLINE_GENERATION__PROVIDER": "openai", "RAGLINE_GENERATION__BASE_URL": upstream.base_url,
                    "RAGLINE_GENERATION__API_KEY": "fake-key", "RAGLINE_GENERATION__MAX_RETRIES": "0"})
        subprocess.run([ragline_bin, "ingest", str(SAMPLES / "ragline-overview.md"), "--json"], env=env, check=True,
                       capture_output=True)
        base, server = serve()
        with httpx.Client(base_url=base, timeout=30) as client, client.stream(
                "POST", "/v1/query", json={"query": QUESTIONS[0], "stream": True}) as response:
            data = (json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: "))
            answer_id = next(data)["answer_id"]
            assert next(data)["text"]  # the client has seen part of the answer
            began = time.monotonic()
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
    # The restart's relay, its stale threshold short for the test (it must exceed the generation timeout).
    relay_env = env | {"RAGLINE_LINEAGE__STREAM_STALE_S": "1", "RAGLINE_GENERATION__TIMEOUT_S": "0.5"}
    time.sleep(max(0.0, began + 1.5 - time.monotonic()))
    reports = [json.loads(subprocess.run([ragline_bin, "relay", "--once", "--json"], env=relay_env, check=True,
                                         capture_output=True, text=True).stdout) for _ in range(2)]
    assert [r["streams_finalized"] for r in reports] == [1, 0] and reports[1]["delivered"] == 0
    comps = Components(Settings(home=Path(env["RAGLINE_HOME"])))
    try:
        record = comps.lineage.find_answer("default", answer_id)
        assert record is not None and record.status == "incomplete"
        landed = comps.lineage_lake.table("answer_events").scan(selected_fields=("answer_id", "status")).to_arrow()
        assert landed.to_pylist() == [{"answer_id": answer_id, "status": "incomplete"}]
    finally:
        comps.close()
