"""Helpers of the Kafka lineage tests: a config of unique topics and a quick group per
test (2 cores: short timeouts, small batches), raw reads of a topic, landed ids."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Engine, select

from lineage import IcebergLanding, OutboxEvent
from lineage.kafka import KafkaConfig
from lineage.lander import KafkaLander, LanderReport
from lineage.tables import outbox


def quick_config(bootstrap: str, **overrides: Any) -> KafkaConfig:
    """Topics and group of this test only; timeouts short enough for fault tests."""
    run = uuid.uuid4().hex[:10]
    config = KafkaConfig(
        bootstrap=bootstrap, answers_topic=f"t{run}.answers", documents_topic=f"t{run}.documents",
        dlq_topic=f"t{run}.dlq", lander_group=f"t{run}.lander", linger_ms=5, lander_batch_size=500,
        lander_max_age_s=0.3, session_timeout_ms=6000, request_timeout_ms=5000, delivery_timeout_ms=8000,
        max_block_ms=4000)
    return replace(config, **overrides)


def land(config: KafkaConfig, lake: IcebergLanding, idle_s: float = 2.0) -> LanderReport:
    return KafkaLander(config, lake).run(until_idle_s=idle_s)


def landed(lake: IcebergLanding, table: str, *columns: str) -> list[dict[str, Any]]:
    return lake.table(table).scan(selected_fields=columns or ("event_id",)).to_arrow().to_pylist()


def read_topic(config: KafkaConfig, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (all partitions), by a consumer of no group."""
    consumer = KafkaConsumer(topic, bootstrap_servers=config.bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


def produce_raw(config: KafkaConfig, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    """Records written as another producer would (poison records, foreign events)."""
    producer = KafkaProducer(bootstrap_servers=config.bootstrap, acks="all")
    try:
        for key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers, partition=0).get(timeout=30)
    finally:
        producer.close()


def outbox_events(engine: Engine) -> list[OutboxEvent]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.seq, outbox.c.event_id, outbox.c.event_type, outbox.c.tenant,
                                   outbox.c.event_time, outbox.c.payload).order_by(outbox.c.seq)).all()
    return [OutboxEvent(*row) for row in rows]
