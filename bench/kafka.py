"""Lineage through Kafka: events/s outbox -> relay -> Kafka -> lander -> Iceberg beside
direct landing (outbox -> Iceberg, the embedded default) in the same run, and the
end-to-end lag from an answer's outbox row to the Iceberg commit that holds it.

Run: ``python bench/kafka.py [--events 100000] [--bootstrap HOST:PORT]``; without
``--bootstrap`` it starts a broker of its own with ``deploy/dev/kafka.sh`` (state in a
temporary directory, deleted after). Client tuning: ``--linger-ms``, ``--batch-bytes``,
``--compression``, ``--lander-batch``, ``--max-poll-records``, ``--fetch-mib``.

1. ``--events`` real answer CloudEvents are put in two outboxes (SQLite), event time now.
2. Direct: ``OutboxRelay(IcebergLanding, batch_size=10000).drain()``; events/s.
3. Kafka, end to end: a lander process (the consumer group) is started, then the relay
   drains the other outbox into Kafka in this process (both cores busy, as in a
   deployment with the relay in the API process and one lander); events/s from the
   relay's start to the lander's last commit (lander batches of ``--lander-batch`` or
   1 s, so the tail is not held for the 5 s default); the relay's publish rate alone.
4. The lander alone: a second lander (new group, new table) over the now-full topics;
   then kafka-python's own floors with the same records and settings (produce with
   acknowledged flush, consume without processing) and the lander's decode + JSON
   Schema validation per event: where the pipeline's cap comes from.
5. Lag: answers recorded at ``--rate``/s for ``--lag-seconds`` by a writer process, the
   relay thread and a lander at their default settings (relay: 10,000 rows or 5 s;
   lander: 5,000 records or 5 s); lag = Iceberg commit time - outbox ``created_at``.
6. With ``--worker-docs N``: streaming ingestion, documents/s through one ``ragline worker``
   against ``ragline ingest`` of the same documents (``bench/ingest_worker.py``; goal >= 0.9x).

No timed assertions; it prints figures and a verdict line per goal (>= 20,000 events/s,
p99 lag <= 30 s).
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named kafka.py: its folder must not shadow the kafka-python package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "lineage"))

from sqlalchemy import Engine, select  # noqa: E402

from lineage import (  # noqa: E402
    IcebergLanding,
    OutboxEvent,
    OutboxRelay,
    RelayWorker,
    SqlLineageStore,
    default_catalog_properties,
)
from lineage.events import build_answer_event, serialize  # noqa: E402
from lineage.iceberg import ANSWER_TABLE  # noqa: E402
from lineage.kafka import (  # noqa: E402
    HEADROOM,
    KafkaConfig,
    KafkaPublisher,
    ensure_topics,
    from_record,
    partition_for,
    to_record,
)
from lineage.lander import OFFSETS_PROPERTY, KafkaLander  # noqa: E402
from lineage.tables import outbox, outbox_pending  # noqa: E402
from services.db import make_engine, migrate  # noqa: E402

KAFKA_SH = ROOT / "deploy" / "dev" / "kafka.sh"
PLACEHOLDER = "00000000-0000-7000-8000-000000000000"
GOAL_RATE, GOAL_P99_S = 20_000.0, 30.0
DEFAULTS = KafkaConfig(bootstrap="")


def fill_outbox(engine: Engine, events: int) -> None:
    """Real answer CloudEvents (5 sources, ~3 KB) in the outbox, as the store writes them."""
    from lineage_records import make_answer

    template = serialize(build_answer_event(make_answer(answer_id=PLACEHOLDER), deployment="bench",
                                            keep_query_text=True))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for start in range(0, events, 10_000):
            rows = []
            for i in range(start, min(events, start + 10_000)):
                event_id = str(uuid.UUID(int=(i << 64) | 0x7000_8000_0000_0000))
                rows.append({"event_id": event_id, "event_type": "ai.ragline.answer.generated.v1", "tenant": "acme",
                             "event_time": now, "created_at": now, "payload": template.replace(PLACEHOLDER, event_id)})
            seqs = conn.execute(outbox.insert().returning(outbox.c.seq, sort_by_parameter_order=True), rows)
            conn.execute(outbox_pending.insert(), [{"seq": seq, "created_at": now} for seq in seqs.scalars()])


def new_outbox(workdir: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{workdir / name}.db")
    migrate(engine)
    return engine


def lander_process(config: dict[str, Any], catalog: dict[str, str], idle_s: float, out: Any) -> None:
    lake = IcebergLanding("bench", catalog)
    report = KafkaLander(KafkaConfig(**config), lake).run(until_idle_s=idle_s)
    out.put(asdict(report))


def commit_times(lake: IcebergLanding, topic: str) -> tuple[float, float, dict[int, list[tuple[int, float]]]]:
    """First and last commit time of the table, and per partition (next offset, commit time)."""
    snapshots = [s for s in lake.table(ANSWER_TABLE).snapshots() if s.summary is not None]
    per_partition: dict[int, list[tuple[int, float]]] = {}
    for snapshot in snapshots:
        raw = snapshot.summary.get(OFFSETS_PROPERTY) if snapshot.summary is not None else None
        for partition, offset in json.loads(raw or "{}").get(topic, {}).items():
            marks = per_partition.setdefault(int(partition), [])
            if not marks or marks[-1][0] < offset:
                marks.append((offset, snapshot.timestamp_ms / 1000))
    stamps = [s.timestamp_ms / 1000 for s in snapshots]
    return min(stamps), max(stamps), per_partition


def through_kafka(args: argparse.Namespace, config: KafkaConfig, workdir: Path) -> dict[str, float]:
    engine = new_outbox(workdir, "kafka")
    fill_outbox(engine, args.events)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    catalog = default_catalog_properties(workdir / "lake-kafka")
    IcebergLanding("bench", catalog).open()
    quick = replace(config, lander_max_age_s=1.0)  # the last, partial batch is not held 5 s
    landers = [ctx.Process(target=lander_process, args=(asdict(quick), catalog, 5.0, out))
               for _ in range(args.landers)]
    for lander in landers:
        lander.start()
    time.sleep(3.0 + args.landers)  # the landers join their group first
    started = time.time()
    publisher = KafkaPublisher(config)
    relayed = OutboxRelay(engine, publisher, batch_size=10_000).drain()
    relay_s = time.time() - started
    publisher.close()
    reports = [out.get(timeout=3600) for _ in landers]
    for lander in landers:
        lander.join()
    _, last, _ = commit_times(IcebergLanding("bench", catalog), config.answers_topic)
    landed = sum(r["landed"] for r in reports)
    assert relayed.delivered == args.events and landed == args.events, (relayed, reports)
    return {"relay": args.events / relay_s, "end_to_end": args.events / (last - started), "relay_s": relay_s,
            "end_to_end_s": last - started, "commits": sum(r["commits"] for r in reports),
            "first_record_s": min(r["first_record_at"] for r in reports) - started}


def lander_alone(args: argparse.Namespace, config: KafkaConfig, workdir: Path) -> float:
    """A new group and a new table over the full topics: the lander's own rate."""
    catalog = default_catalog_properties(workdir / "lake-lander")
    lake = IcebergLanding("bench", catalog)
    fresh = replace(config, lander_group=config.lander_group + ".alone")
    report = KafkaLander(fresh, lake).run(until_idle_s=3.0)
    _, last, _ = commit_times(lake, config.answers_topic)
    assert report.landed == args.events and report.first_record_at is not None, report
    return args.events / (last - report.first_record_at)  # from its first record (joining the group aside)


def writer_process(url: str, rate: float, seconds: float) -> None:
    from lineage_records import make_answer

    store = SqlLineageStore(make_engine(url), deployment="bench")
    started = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - started) < seconds:
        store.record_answer(make_answer())
        n += 1
        ahead = n / rate - elapsed
        if ahead > 0:
            time.sleep(ahead)


def lag(args: argparse.Namespace, config: KafkaConfig, workdir: Path) -> tuple[int, float, float, float]:
    """Answers at a steady rate through the default relay and lander settings."""
    engine = new_outbox(workdir, "lag")
    url = str(engine.url)
    topics = replace(config, answers_topic=config.answers_topic + ".lag", lander_batch_size=5000,
                     lander_max_age_s=5.0, lander_group=config.lander_group + ".lag")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    catalog = default_catalog_properties(workdir / "lake-lag")
    IcebergLanding("bench", catalog).open()
    lander = ctx.Process(target=lander_process, args=(asdict(topics), catalog, 8.0, out))
    lander.start()
    time.sleep(3.0)
    writer = ctx.Process(target=writer_process, args=(url, args.rate, args.lag_seconds))
    relay = RelayWorker(OutboxRelay(engine, KafkaPublisher(topics)), interval_s=1.0)  # batch 10,000 or 5 s
    relay.start()
    writer.start()
    writer.join()
    relay.stop()
    out.get(timeout=600)
    lander.join()
    with engine.connect() as conn:
        created = dict(conn.execute(select(outbox.c.event_id, outbox.c.created_at)).all())
    lake = IcebergLanding("bench", catalog)
    _, _, marks = commit_times(lake, topics.answers_topic)
    rows = lake.table(ANSWER_TABLE).scan(selected_fields=("event_id", "kafka_partition", "kafka_offset")).to_arrow()
    lags = []
    for event_id, partition, offset in zip(*(rows[c].to_pylist() for c in rows.column_names), strict=True):
        marks_p = marks[partition]
        at = marks_p[bisect.bisect_right([m[0] for m in marks_p], offset)][1]
        lags.append(at - created[event_id].replace(tzinfo=UTC).timestamp())
    lags.sort()
    return len(lags), statistics.median(lags), lags[int(0.99 * (len(lags) - 1))], lags[-1]


def client_floors(args: argparse.Namespace, config: KafkaConfig) -> dict[str, float]:
    """kafka-python alone, same records and settings: produce (send + acknowledged flush) and
    consume (poll, no processing) rates; and the lander's per-event decode + JSON Schema cost."""
    from kafka import KafkaConsumer, KafkaProducer
    from lineage_records import make_answer

    event = build_answer_event(make_answer(answer_id=PLACEHOLDER), deployment="bench", keep_query_text=True)
    row = OutboxEvent(1, PLACEHOLDER, event.get_type(), "acme", event.get_time(), serialize(event))
    record = to_record(row, config)
    topic = config.answers_topic + ".floor"
    ensure_topics(config, topic)
    producer = KafkaProducer(**config.producer_options())
    started = time.perf_counter()
    for i in range(args.events):
        producer.send(topic, key=record.key, value=record.value, headers=record.headers,
                      partition=partition_for(str(i).encode(), config.partitions))
    producer.flush()
    produce = args.events / (time.perf_counter() - started)
    producer.close()
    limit = config.max_inline_bytes + HEADROOM
    consumer = KafkaConsumer(topic, **config.client_options(), group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, max_poll_records=config.max_poll_records,
                             fetch_max_bytes=max(config.fetch_max_bytes, limit),
                             max_partition_fetch_bytes=max(8 << 20, limit), metrics_enabled=False)
    got, started = 0, 0.0
    while got < args.events:
        for records in consumer.poll(timeout_ms=1000).values():
            started = started or time.perf_counter()
            got += len(records)
    consume = args.events / (time.perf_counter() - started)
    consumer.close()
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        from_record(record.headers, record.value)
    return {"produce": produce, "consume": consume, "decode_us": (time.perf_counter() - started) / n * 1e6}


def direct(args: argparse.Namespace, workdir: Path) -> float:
    engine = new_outbox(workdir, "direct")
    fill_outbox(engine, args.events)
    lake = IcebergLanding("bench", default_catalog_properties(workdir / "lake-direct")).open()
    started = time.perf_counter()
    report = OutboxRelay(engine, lake, batch_size=10_000).drain()
    assert report.delivered == args.events
    return args.events / (time.perf_counter() - started)


def worker_vs_ingest(args: argparse.Namespace, bootstrap: str) -> float:
    """Streaming ingestion (``bench/ingest_worker.py``): documents/s through one ``ragline
    worker`` against ``ragline ingest`` of the same documents; prints them, returns the ratio."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingest_worker", ROOT / "bench" / "ingest_worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return float(module.compare(bootstrap, args.worker_docs, args.worker_pdfs, repeat=1)["ratio"])


def start_broker(workdir: Path) -> tuple[str, dict[str, str]]:
    env = os.environ | {"RAGLINE_KAFKA_STATE": str(workdir / "kafka")}
    done = subprocess.run([str(KAFKA_SH), "start"], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1].removeprefix("bootstrap="), env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start one with deploy/dev/kafka.sh)")
    parser.add_argument("--linger-ms", type=int, default=DEFAULTS.linger_ms)
    parser.add_argument("--batch-bytes", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--compression", default=DEFAULTS.compression)
    parser.add_argument("--lander-batch", type=int, default=DEFAULTS.lander_batch_size)
    parser.add_argument("--max-poll-records", type=int, default=DEFAULTS.max_poll_records)
    parser.add_argument("--fetch-mib", type=int, default=DEFAULTS.fetch_max_bytes >> 20)
    parser.add_argument("--landers", type=int, default=1, help="lander processes in the group (end to end)")
    parser.add_argument("--rate", type=float, default=500.0, help="answers/s of the lag phase")
    parser.add_argument("--lag-seconds", type=float, default=60.0, help="length of the lag phase (0: skip it)")
    parser.add_argument("--worker-docs", type=int, default=0, help="streaming ingestion: this many text documents "
                        "(plus tests/corpora's code, HTML and --worker-pdfs PDFs) through `ragline worker` against "
                        "`ragline ingest` (0: skip it; bench/ingest_worker.py runs it alone)")
    parser.add_argument("--worker-pdfs", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragline-bench-kafka-") as tmp:
        workdir = Path(tmp)
        broker_env = None
        bootstrap = args.bootstrap
        if not bootstrap:
            bootstrap, broker_env = start_broker(workdir)
        run = uuid.uuid4().hex[:8]
        config = KafkaConfig(
            bootstrap=bootstrap, answers_topic=f"bench{run}.answers", documents_topic=f"bench{run}.documents",
            dlq_topic=f"bench{run}.dlq", lander_group=f"bench{run}", linger_ms=args.linger_ms,
            batch_size=args.batch_bytes, compression=args.compression, lander_batch_size=args.lander_batch,
            max_poll_records=args.max_poll_records, fetch_max_bytes=args.fetch_mib << 20)
        try:
            print(f"command: python bench/kafka.py {' '.join(sys.argv[1:])}")
            print(f"config: linger_ms={config.linger_ms} batch_size={config.batch_size} "
                  f"compression={config.compression} lander_batch={config.lander_batch_size} "
                  f"max_poll_records={config.max_poll_records} fetch_max_bytes={config.fetch_max_bytes}; "
                  f"{os.cpu_count()} cores")
            direct_rate = direct(args, workdir)
            print(f"direct  outbox -> Iceberg: {direct_rate:,.0f} events/s ({args.events:,} events)")
            kafka = through_kafka(args, config, workdir)
            print(f"kafka   outbox -> relay -> Kafka -> {args.landers} lander(s) -> Iceberg: "
                  f"{kafka['end_to_end']:,.0f} events/s "
                  f"end to end ({kafka['end_to_end_s']:.1f} s, first record read at +{kafka['first_record_s']:.1f} s, "
                  f"{kafka['commits']} lander commits); "
                  f"relay publish alone {kafka['relay']:,.0f} events/s ({kafka['relay_s']:.1f} s)")
            alone = lander_alone(args, config, workdir)
            print(f"lander  Kafka backlog -> Iceberg (one process): {alone:,.0f} events/s")
            floors = client_floors(args, config)
            print(f"floors  kafka-python alone, same records and settings: produce {floors['produce']:,.0f}/s, "
                  f"consume {floors['consume']:,.0f}/s (no processing); the lander's decode + JSON Schema "
                  f"{floors['decode_us']:.0f} us/event")
            print(f"ratio   kafka end to end / direct: {kafka['end_to_end'] / direct_rate:.2f}")
            verdicts = [("events/s through Kafka", kafka["end_to_end"], GOAL_RATE, False)]
            if args.lag_seconds > 0:
                n, p50, p99, worst = lag(args, config, workdir)
                print(f"lag     answer -> Iceberg commit at {args.rate:,.0f} answers/s for {args.lag_seconds:.0f} s "
                      f"(relay 10,000/5 s, lander 5,000/5 s): p50 {p50:.1f} s, p99 {p99:.1f} s, max {worst:.1f} s "
                      f"({n:,} answers)")
                verdicts.append(("lag p99 s", p99, GOAL_P99_S, True))
            if args.worker_docs > 0:
                worker_vs_ingest(args, bootstrap)  # prints its figures and its verdict (goal >= 0.9)
            print("verdicts:")
            for name, value, goal, lower in verdicts:
                ok = value <= goal if lower else value >= goal
                print(f"  {'PASS' if ok else 'MISS'} {name}: {value:,.1f} (goal {'<=' if lower else '>='} {goal:,.0f})")
        finally:
            if broker_env is not None:
                subprocess.run([str(KAFKA_SH), "stop", "--clean"], env=broker_env, capture_output=True)


if __name__ == "__main__":
    main()
