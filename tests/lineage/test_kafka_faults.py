"""Lineage on Kafka under faults: the broker stopped during a burst of answers, a lander
SIGKILLed mid-batch, two landers sharing one group and racing on one table (the SQL
catalog on PostgreSQL). Each time every event lands in Iceberg exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from kafka_lineage import land, landed, outbox_events, quick_config
from lineage_records import make_answer
from sqlalchemy import Engine, create_engine, text

from lineage import IcebergLanding, OutboxRelay, RelayWorker, SqlLineageStore, default_catalog_properties
from lineage.iceberg import ANSWER_TABLE
from lineage.kafka import KafkaConfig, KafkaPublisher
from lineage.lander import KafkaLander, LanderReport
from lineage.relay import outbox_backlog
from services.db import make_engine, migrate

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KAFKA_SH = REPO / "deploy" / "dev" / "kafka.sh"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The outbox on SQLite: the faults here are Kafka's and the lander's."""
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlLineageStore:
    return SqlLineageStore(engine, deployment="test")


def publish_answers(store: SqlLineageStore, engine: Engine, config: KafkaConfig, count: int) -> set[str]:
    answers = [make_answer() for _ in range(count)]
    for answer in answers:
        store.record_answer(answer)
    publisher = KafkaPublisher(config)
    OutboxRelay(engine, publisher, batch_size=1000).drain()
    publisher.close()
    return {a.answer_id for a in answers}


def assert_exactly_once(lake: IcebergLanding, expected: set[str]) -> None:
    ids = [r["event_id"] for r in landed(lake, ANSWER_TABLE)]
    assert len(ids) == len(set(ids)), "an event landed twice"
    assert set(ids) == expected


# --- the broker stops during a burst ------------------------------------------------

@dataclass
class Broker:
    env: dict[str, str]
    bootstrap: str = ""

    def run(self, *args: str) -> str:
        done = subprocess.run([str(KAFKA_SH), *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        self.bootstrap = self.run("start").strip().splitlines()[-1].removeprefix("bootstrap=")


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this test alone (the session's is shared): stopped and started again."""
    broker = Broker(os.environ | {"RAGLINE_KAFKA_STATE": str(tmp_path_factory.mktemp("own-kafka"))})
    broker.start()
    try:
        yield broker
    finally:
        broker.run("stop", "--clean")


def test_answers_go_on_while_the_broker_is_down_and_land_once_after(
        own_broker: Broker, store: SqlLineageStore, engine: Engine, lake: IcebergLanding) -> None:
    config = quick_config(own_broker.bootstrap, request_timeout_ms=2000, delivery_timeout_ms=4000, max_block_ms=2000)
    relay = RelayWorker(OutboxRelay(engine, KafkaPublisher(config), batch_size=50, max_age_s=0), interval_s=0.1,
                        max_backoff_s=1.0)
    recorded: list[str] = []
    failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def burst() -> None:
        while writing.is_set():
            answer = make_answer()
            try:
                store.record_answer(answer)  # what the API does before it serves an answer
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)
                return
            recorded.append(answer.answer_id)
            time.sleep(0.005)

    writer = threading.Thread(target=burst)
    relay.start()
    writer.start()
    try:
        time.sleep(1.5)
        own_broker.run("stop")  # keeps its data and ports
        down_at = len(recorded)
        time.sleep(3.0)
        backlog_while_down, _ = outbox_backlog(engine)
        assert len(recorded) > down_at + 50, "answers kept being recorded while the broker was down"
        assert backlog_while_down > 0 and relay.alive
        own_broker.start()
        time.sleep(1.0)
    finally:
        writing.clear()
        writer.join()
    deadline = time.monotonic() + 60
    while outbox_backlog(engine)[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    relay.stop()
    assert failures == []
    assert outbox_backlog(engine)[0] == 0, "the outbox drained once the broker came back"

    report = land(config, lake)
    assert_exactly_once(lake, set(recorded))
    assert report.landed == len(recorded)


# --- a lander SIGKILLed mid-batch -----------------------------------------------------

def test_a_lander_killed_mid_batch_resumes_exactly_once(
        kafka_bootstrap: str, store: SqlLineageStore, engine: Engine, tmp_path: Path) -> None:
    config = quick_config(kafka_bootstrap, lander_batch_size=100, lander_max_age_s=0.2)
    expected = publish_answers(store, engine, config, 1500)
    properties = default_catalog_properties(tmp_path / "lake")
    lake = IcebergLanding("test", properties).open()

    env = os.environ | {"PYTHONPATH": f"{REPO}{os.pathsep}{HERE}"}
    proc = subprocess.Popen([sys.executable, str(HERE / "lander_worker.py"), json.dumps(asdict(config)),
                             json.dumps(properties)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while lake.count(ANSWER_TABLE) < 300 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = lake.count(ANSWER_TABLE)
    assert 0 < before < len(expected), "killed in the middle of the stream"

    report = KafkaLander(replace_session(config), lake).run(until_idle_s=2.0)
    assert report.landed == len(expected) - before
    assert_exactly_once(lake, expected)


def replace_session(config: KafkaConfig) -> KafkaConfig:
    """The dead member holds its partitions until its session times out; a new client id joins."""
    return KafkaConfig(**(asdict(config) | {"session_timeout_ms": 6000}))


# --- two landers on one table (PostgreSQL SQL catalog) --------------------------------

@pytest.fixture
def pg_catalog(tmp_path: Path) -> Iterator[dict[str, str]]:
    """pyiceberg's SQL catalog on a PostgreSQL schema of its own (optimistic commits by CAS)."""
    base = os.environ.get("RAGLINE_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("RAGLINE_TEST_POSTGRES_URL is not set (deploy/dev/postgres.sh start)", pytrace=False)
    schema = f"ice_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield {"type": "sql", "uri": f"{base}?options=-csearch_path%3D{schema}",
               "warehouse": (tmp_path / "warehouse").as_uri()}
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run_landers(configs: list[KafkaConfig], catalog: dict[str, str]) -> list[LanderReport]:
    IcebergLanding("test", catalog).open()  # tables exist before the race
    reports: list[LanderReport] = [LanderReport() for _ in configs]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            reports[i] = KafkaLander(configs[i], IcebergLanding("test", catalog), client_id=f"lander-{i}").run(
                until_idle_s=3.0)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    return reports


def test_two_landers_in_one_group_land_each_event_once(
        kafka_bootstrap: str, store: SqlLineageStore, engine: Engine, pg_catalog: dict[str, str]) -> None:
    config = quick_config(kafka_bootstrap, lander_batch_size=50, lander_max_age_s=0.1)
    expected = publish_answers(store, engine, config, 1200)
    resend = KafkaPublisher(config)  # a relay's re-send: 100 events again, at new offsets
    resend.deliver("again", outbox_events(engine)[:100])
    resend.close()

    reports = run_landers([config, config], pg_catalog)

    assert_exactly_once(IcebergLanding("test", pg_catalog), expected)
    assert sum(r.landed for r in reports) == 1200
    assert sum(r.duplicates for r in reports) >= 100 - sum(r.already_landed for r in reports)


def test_two_landers_racing_on_the_same_records_land_each_event_once(
        kafka_bootstrap: str, store: SqlLineageStore, engine: Engine, pg_catalog: dict[str, str]) -> None:
    """Two groups read every record and commit to one table: optimistic commits and the
    offsets in the snapshot fence them (one lander's commit fails, it reloads and drops)."""
    config = quick_config(kafka_bootstrap, lander_batch_size=50, lander_max_age_s=0.1)
    rival = KafkaConfig(**(asdict(config) | {"lander_group": config.lander_group + ".rival"}))
    expected = publish_answers(store, engine, config, 800)

    reports = run_landers([config, rival], pg_catalog)

    assert_exactly_once(IcebergLanding("test", pg_catalog), expected)
    assert sum(r.landed for r in reports) == 800
    assert sum(r.consumed for r in reports) > 800  # both read records, some the same ones
    assert sum(r.conflicts + r.already_landed for r in reports) > 0  # and they were fenced off
