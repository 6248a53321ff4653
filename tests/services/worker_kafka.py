"""Helpers of the streaming-ingestion tests: settings of unique topics and a quick group per
test (2 cores: short session timeouts, small batches), a small corpus, raw Kafka reads."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text

WORDS = ["alpha", "beta", "gamma", "delta", "kafka", "worker", "index", "lineage", "vector", "chunk", "tenant",
         "embedding", "query", "answer", "river", "mountain", "ocean", "forest", "city", "library", "harbour",
         "lantern", "meadow", "copper"]


def kafka_env(bootstrap: str, **extra: str) -> dict[str, str]:
    """``RAGLINE_KAFKA__*`` of one test: its own topics and groups."""
    run = uuid.uuid4().hex[:10]
    return {
        "RAGLINE_KAFKA__BOOTSTRAP": bootstrap, "RAGLINE_KAFKA__INGEST_TOPIC": f"w{run}.requests",
        "RAGLINE_KAFKA__INGEST_DLQ_TOPIC": f"w{run}.dlq", "RAGLINE_KAFKA__WORKER_GROUP": f"w{run}.worker",
        "RAGLINE_KAFKA__ANSWERS_TOPIC": f"w{run}.answers", "RAGLINE_KAFKA__DOCUMENTS_TOPIC": f"w{run}.documents",
        "RAGLINE_KAFKA__DLQ_TOPIC": f"w{run}.lineage-dlq", "RAGLINE_KAFKA__LANDER_GROUP": f"w{run}.lander",
        "RAGLINE_KAFKA__SESSION_TIMEOUT_MS": "6000", "RAGLINE_KAFKA__REQUEST_TIMEOUT_MS": "5000",
        "RAGLINE_KAFKA__DELIVERY_TIMEOUT_MS": "8000", "RAGLINE_KAFKA__MAX_BLOCK_MS": "4000",
        "RAGLINE_KAFKA__LINGER_MS": "5", **extra}


def kafka_settings(env: dict[str, str]) -> dict[str, Any]:
    """The same, as the ``kafka`` group of ``Settings(...)``."""
    prefix = "RAGLINE_KAFKA__"
    return {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}


def write_corpus(folder: Path, count: int, start: int = 0) -> list[Path]:
    """Small distinct text documents; document i holds the sentence 'the secret code of item i is C(i)'."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        rnd = random.Random(i)
        body = " ".join(rnd.choice(WORDS) for _ in range(50))
        path = folder / f"doc{i:03d}.txt"
        path.write_text(f"Document {i}: the secret code of item {i} is {code(i)}.\n\n{body}.\n", encoding="utf-8")
        paths.append(path)
    return paths


def code(i: int) -> int:
    return 1000 + (i * 7919) % 9000


def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (all partitions), by a consumer of no group."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


def produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    """Records written as another producer would (poison records)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` the group has committed past (summed over partitions)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items()
               if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0)


def indexed_count(home: Path) -> int:
    """Documents the registry holds as indexed (read beside a running worker: SQLite WAL)."""
    engine = create_engine(f"sqlite:///{home / 'ragline.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM documents WHERE status = 'indexed'")).scalar_one())
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return 0
    finally:
        engine.dispose()
