"""The development/test Kafka broker (deploy/dev/kafka.sh) is real and takes what the relay will send.

Idempotent ``acks=all`` produce of CloudEvents-style records (binary mode: ``ce_*``
headers, a key), one of them ~15 MiB, just under RAGLINE_KAFKA__MAX_INLINE_BYTES'
16 MiB default; then a consumer group reads them back in order and commits.
"""

from __future__ import annotations

import os
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

MiB = 1024 * 1024
BIG = 15 * MiB
CLIENT_LIMIT = 32 * MiB  # client-side caps above the broker's (16 MiB + headroom), so the broker's are tested


def ce_headers(i: int, event_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"urn:ragline:test"),
        ("ce_type", b"ragline.lineage.test.v1"),
        ("ce_time", f"2025-01-01T00:00:0{i}Z".encode()),
        ("content-type", b"application/json" if i != 1 else b"application/octet-stream"),
    ]


def test_round_trip_with_a_15_mib_record(kafka_bootstrap: str) -> None:
    topic = f"ragline-test-{uuid.uuid4().hex[:12]}"
    group = f"ragline-test-{uuid.uuid4().hex[:12]}"
    tp = TopicPartition(topic, 0)
    records = [
        (b"doc-0", b'{"n": 0}'),
        (b"doc-1", os.urandom(BIG)),  # incompressible, sent as is
        (b"doc-2", b'{"n": 2}'),
    ]
    headers = [ce_headers(i, str(uuid.uuid4())) for i in range(len(records))]

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="ragline-test-admin")
    try:
        # broker defaults only: no per-topic max.message.bytes
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], timeout_ms=30_000)

        producer = KafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            max_request_size=CLIENT_LIMIT,
            request_timeout_ms=60_000,
        )
        try:
            offsets = []
            for (key, value), hdrs in zip(records, headers, strict=True):
                meta = producer.send(topic, key=key, value=value, headers=hdrs).get(timeout=60)
                assert (meta.topic, meta.partition) == (topic, 0)
                offsets.append(meta.offset)
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)
        assert offsets == [0, 1, 2]

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=CLIENT_LIMIT,
            max_partition_fetch_bytes=CLIENT_LIMIT,
            request_timeout_ms=60_000,
        )
        try:
            got = []
            deadline = time.monotonic() + 60
            while len(got) < len(records) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=1000).values():
                    got.extend(batch)
            assert len(got) == len(records), f"consumed {len(got)} of {len(records)} records in 60 s"
            assert [r.offset for r in got] == [0, 1, 2]
            assert [r.key for r in got] == [key for key, _ in records]
            assert [list(r.headers) for r in got] == headers
            assert [len(r.value) for r in got] == [len(value) for _, value in records]
            assert [r.value for r in got] == [value for _, value in records]

            consumer.commit()
            assert consumer.committed(tp) == 3
        finally:
            consumer.close()

        # the commit is the group's, kept by the broker: a new member of the group resumes after it
        rejoined = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        try:
            assert rejoined.committed(tp) == 3
            rejoined.assign([tp])
            assert rejoined.position(tp) == 3
        finally:
            rejoined.close()
    finally:
        admin.delete_topics([topic], timeout_ms=30_000)
        admin.close()
