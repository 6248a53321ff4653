"""The Kafka clients of streaming ingestion (kafka-python): the worker's consumer group
(manual commits) with its dead-letter producer, and ``ragline produce``'s producer.

Connection, security and producer settings are lineage's (``RAGLINE_KAFKA__*`` through
``lineage.kafka.KafkaConfig``); kafka-python errors become the transient
``KafkaUnavailableError`` here, once. Records carry what ``services.ingest_requests``
encodes; this module only moves bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from lineage.kafka import (
    ERROR_HEADER,
    HEADROOM,
    ORIGIN_HEADER,
    KafkaConfig,
    KafkaUnavailableError,
    close_producer,
    ensure_topics,
    partition_for,
    translated,
)
from services.ingest_requests import EncodedRequest

log = logging.getLogger(__name__)

Offsets = Mapping[tuple[str, int], int]  # (topic, partition) -> the next offset to read


@dataclass(frozen=True, slots=True)
class RequestTopics:
    """What streaming ingestion adds to lineage's Kafka config."""

    requests: str = "ragline.ingest.requests"
    dlq: str = "ragline.ingest.dlq"
    group: str = "ragline-worker"
    batch_size: int = 32
    max_poll_interval_ms: int = 600_000


@dataclass(frozen=True, slots=True)
class Consumed:
    """One record as the worker read it (kafka-python's record, decoupled)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class KafkaRequestLog:
    """The worker's side: a consumer group on the requests topic, offsets committed by the
    caller only (``commit``), bad records sent to the DLQ and acknowledged before that."""

    def __init__(self, config: KafkaConfig, topics: RequestTopics, *, client_id: str = "ragline-worker") -> None:
        self._config = config
        self.topics = topics
        self._client_id = client_id
        self._consumer: Any = None
        self._dlq: Any = None
        self.assigned_at = 0.0  # when partitions last came (the idle clock of --until-idle)

    def open(self) -> None:
        cfg, topics = self._config, self.topics
        ensure_topics(cfg, topics.requests, topics.dlq)
        limit = cfg.max_inline_bytes + HEADROOM
        with translated("joining the worker group"):
            self._consumer = KafkaConsumer(
                **cfg.client_options(), client_id=self._client_id, group_id=topics.group,
                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=topics.batch_size,
                fetch_max_bytes=max(cfg.fetch_max_bytes, limit), max_partition_fetch_bytes=max(8 << 20, limit),
                session_timeout_ms=cfg.session_timeout_ms, heartbeat_interval_ms=max(cfg.session_timeout_ms // 4, 100),
                max_poll_interval_ms=topics.max_poll_interval_ms, metrics_enabled=False)
            self._consumer.partitions_for_topic(topics.requests)  # metadata first: the first assignment has partitions
            self._consumer.subscribe([topics.requests], listener=_Assigned(self))

    def poll(self, timeout_ms: int) -> list[Consumed]:
        """Records in partition order, each partition's in offset order."""
        with translated("polling the requests topic"):
            polled = self._consumer.poll(timeout_ms=timeout_ms, update_offsets=True)
        return [Consumed(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or []))
                for tp in sorted(polled, key=lambda tp: (tp.topic, tp.partition)) for r in polled[tp]]

    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    def commit(self, offsets: Offsets) -> bool:
        """Commit; False when this member lost the partitions meanwhile (the new owner reads
        them again from the last commit: indexing is idempotent)."""
        if not offsets:
            return True
        commit = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        try:
            with translated("committing the worker's offsets"):
                self._consumer.commit(commit)
        except KafkaUnavailableError as exc:
            if isinstance(exc.__cause__, kafka_errors.CommitFailedError | kafka_errors.IllegalStateError):
                log.warning("worker: offsets not committed (partitions reassigned): %s", exc)
                return False
            raise
        return True

    def rewind(self, offsets: Offsets) -> None:
        """Read again from these offsets (after a transient failure), where still assigned."""
        owned = self._consumer.assignment()
        for (topic, partition), offset in offsets.items():
            tp = TopicPartition(topic, partition)
            if tp in owned:
                self._consumer.seek(tp, offset)

    def dead_letter(self, records: Sequence[tuple[Consumed, str]]) -> None:
        """The original record (key, value, headers) plus the error and its origin, on the DLQ,
        acknowledged by the broker."""
        if not records:
            return
        try:
            with translated("sending requests to the DLQ"):
                if self._dlq is None:
                    self._dlq = KafkaProducer(**self._config.producer_options())
                futures = [self._dlq.send(
                    self.topics.dlq, key=record.key, value=record.value,
                    headers=[*record.headers, (ERROR_HEADER, error.encode()[:4000]),
                             (ORIGIN_HEADER, f"{record.topic}/{record.partition}/{record.offset}".encode())])
                    for record, error in records]
                self._dlq.flush(timeout=self._config.delivery_timeout_ms / 1000 + 5)
                for future in futures:
                    future.get(0)
        except KafkaUnavailableError:
            if self._dlq is not None:  # a fresh idempotent session for the batch's next attempt
                close_producer(self._dlq)
                self._dlq = None
            raise

    def lag(self) -> dict[int, int]:
        """Records behind the end of each assigned partition (last known high-water mark)."""
        lags: dict[int, int] = {}
        consumer = self._consumer
        if consumer is None:
            return lags
        for tp in consumer.assignment():
            try:
                high = consumer.highwater(tp)
                position = consumer.position(tp, timeout_ms=0) if high is not None else None
            except (kafka_errors.KafkaError, AssertionError):
                continue
            if high is not None and position is not None:
                lags[tp.partition] = max(high - position, 0)
        return lags

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask what ended the run
                log.debug("closing the worker's consumer: %s", exc)
        if self._dlq is not None:
            close_producer(self._dlq)
        self._consumer = self._dlq = None


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]  # (kafka-python is untyped)
    """Offsets are committed after each batch, before the next poll: a revocation (which
    happens inside poll) finds nothing pending. Assignments restart the idle clock."""

    def __init__(self, log_: KafkaRequestLog) -> None:
        self._log = log_

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        return None

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._log.assigned_at = time.monotonic()


class KafkaRequestProducer:
    """``ragline produce``: requests sent with lineage's producer settings (``acks=all``,
    idempotent), keyed by document_id on the CRC-32 partition of the key; a send counts
    only once the broker acknowledged it."""

    def __init__(self, config: KafkaConfig, topics: RequestTopics) -> None:
        self._config = config
        self.topics = topics
        self._producer: Any = None
        self._partitions = 0

    def open(self) -> None:
        ensure_topics(self._config, self.topics.requests, self.topics.dlq)
        with translated("connecting the requests producer"):
            self._producer = KafkaProducer(**self._config.producer_options())
            self._partitions = len(self._producer.partitions_for(self.topics.requests) or ()) or self._config.partitions

    @property
    def max_value_bytes(self) -> int:
        return self._config.max_inline_bytes

    def send(self, records: Iterable[EncodedRequest]) -> int:
        if self._producer is None:
            self.open()
        sent = 0
        try:
            with translated(f"producing to {self.topics.requests}"):
                futures = [self._producer.send(self.topics.requests, key=r.key, value=r.value, headers=r.headers,
                                               partition=partition_for(r.key, self._partitions)) for r in records]
                self._producer.flush(timeout=(self._config.delivery_timeout_ms + self._config.linger_ms) / 1000 + 5)
                for future in futures:
                    if not future.is_done:
                        raise KafkaUnavailableError("the broker did not acknowledge in time")
                    future.get(0)
                    sent += 1
        except KafkaUnavailableError:
            self.close()
            raise
        return sent

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            close_producer(producer, timeout_s=5)
