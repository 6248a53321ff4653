"""SIGKILL mid-burst: every answer a client received has its rows and, once the relay
drained, exactly one Iceberg row; a relay killed mid-drain loses and duplicates nothing;
a stream killed mid-way is finalized ``incomplete`` by the relay and lands once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, func, select

from lineage import IcebergLanding, OutboxRelay, SqlLineageStore, default_catalog_properties
from lineage.iceberg import ANSWER_TABLE
from lineage.tables import answer_sources, answers, outbox

WORKER = Path(__file__).with_name("crash_worker.py")
REPO = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": f"{REPO}{os.pathsep}{WORKER.parent}"}
    proc = subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def kill(proc: subprocess.Popen[str]) -> list[str]:
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return out.split()


def test_sigkill_mid_burst_loses_and_duplicates_nothing(db_url: str, engine: Engine, tmp_path: Path) -> None:
    writer = start("write", db_url)
    assert writer.stdout is not None
    acknowledged = [writer.stdout.readline().strip() for _ in range(150)]
    acknowledged += kill(writer)  # whatever else it printed before dying

    with engine.connect() as conn:
        recorded = set(conn.execute(select(answers.c.answer_id)).scalars())
        sources = dict(conn.execute(select(answer_sources.c.answer_id, func.count())
                                    .group_by(answer_sources.c.answer_id)).all())
        queued = set(conn.execute(select(outbox.c.event_id)).scalars())
    assert set(acknowledged) <= recorded  # a killed transaction may be committed but unacknowledged, never the reverse
    assert recorded == queued and all(sources[a] == 5 for a in recorded)

    # A relay killed mid-drain, then a new one taking its batches over.
    lake_dir = tmp_path / "lake"
    relay = start("relay", db_url, str(lake_dir))
    time.sleep(1.0)
    kill(relay)
    OutboxRelay(engine, lake_for(lake_dir), batch_size=25, claim_timeout_s=0).drain()

    landed = lake_for(lake_dir).table(ANSWER_TABLE).scan().to_arrow()["event_id"].to_pylist()
    assert len(landed) == len(set(landed)) == len(recorded)
    assert set(landed) == recorded


def test_sigkill_mid_stream_lands_the_answer_once_as_incomplete(db_url: str, engine: Engine,
                                                                 tmp_path: Path) -> None:
    streamer = start("stream", db_url)
    assert streamer.stdout is not None
    begun = streamer.stdout.readline().strip()  # the client saw the stream start
    kill(streamer)
    with engine.connect() as conn:
        assert conn.execute(select(answers.c.status).where(answers.c.answer_id == begun)).scalar_one() == "streaming"
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0

    # Relay passes (two relays, as two replicas would run) with a stale threshold of 0.
    store = SqlLineageStore(engine)
    first = OutboxRelay(engine, lake_for(tmp_path / "lake"), streams=store, stream_stale_s=0).drain()
    second = OutboxRelay(engine, lake_for(tmp_path / "lake"), streams=store, stream_stale_s=0).drain()
    assert (first.streams_finalized, first.delivered, second.streams_finalized, second.delivered) == (1, 1, 0, 0)

    landed = lake_for(tmp_path / "lake").table(ANSWER_TABLE).scan().to_arrow()
    assert landed["answer_id"].to_pylist() == [begun]
    assert landed["status"].to_pylist() == ["incomplete"]
    with engine.connect() as conn:
        assert conn.execute(select(answers.c.status).where(answers.c.answer_id == begun)).scalar_one() == "incomplete"


def lake_for(path: Path) -> IcebergLanding:
    return IcebergLanding("test", default_catalog_properties(path)).open()
