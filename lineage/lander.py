"""The lander: a Kafka consumer group that appends lineage events to the Iceberg tables,
exactly once.

- **Offsets live in Iceberg.** Every append carries, in its snapshot summary
  (``ragline.kafka.offsets``), the next offset to read of every partition of its topic,
  written in the same commit as the rows. On start and on every partition assignment
  the lander seeks to them, walking the snapshots back past commits that carry none
  (a compaction). Kafka's own committed offsets are written after the Iceberg commit
  and are only a hint, used where Iceberg holds none.
- **Fencing by offsets.** Right before each commit the table is loaded afresh and every
  record below its partition's landed offset is dropped: a lander that lost its
  partitions in a rebalance, or a second lander that read the same records, adds
  nothing. Iceberg's optimistic commit makes check-and-append atomic: when another
  lander committed in between (``CommitFailedException``), reload, re-check, retry.
- **Dedup by event id.** A relay that crashed before the broker acknowledged sends the
  same event again at a new offset (same key, so the same partition): duplicates in a
  batch are dropped, then ids already in the table, by a scan of the batch's day
  partitions for just those ids.
- **Bad records** (unparseable, or failing the type's JSON Schema) go to the DLQ topic
  with the error in a header, before the commit that moves past them.
- A batch is committed at ``batch_size`` records or once its first record is
  ``max_age_s`` old; one topic per table, so each commit touches one table.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual, Or
from pyiceberg.table import Table

from lineage.base import OutboxEvent
from lineage.errors import InvalidEventError, LandingError, LineageError
from lineage.iceberg import (
    ANSWER_TABLE,
    DOCUMENT_TABLE,
    KAFKA_OFFSETS_PROPERTY,
    IcebergLanding,
    day_filter,
    latest_property,
    rows_for,
    translated_landing,
)
from lineage.kafka import (
    ERROR_HEADER,
    HEADROOM,
    ORIGIN_HEADER,
    DecodedEvent,
    KafkaConfig,
    KafkaUnavailableError,
    close_producer,
    ensure_topics,
    from_record,
    translated,
)
from schemas.lineage import ANSWER_EVENT_TYPE

log = logging.getLogger(__name__)

OFFSETS_PROPERTY = KAFKA_OFFSETS_PROPERTY
COMMIT_ATTEMPTS = 10


@dataclass
class LanderReport:
    consumed: int = 0  # records read from Kafka
    landed: int = 0  # rows appended to Iceberg
    duplicates: int = 0  # events already landed under another offset (a relay's re-send)
    already_landed: int = 0  # records below the landed offsets (another lander had them)
    dead_lettered: int = 0  # bad records sent to the DLQ topic
    commits: int = 0  # Iceberg commits
    conflicts: int = 0  # commits retried because another lander committed first
    failures: int = 0  # batches dropped and re-read after a transient failure
    first_record_at: float | None = None  # wall-clock time the first record came (rates, lag)


@dataclass
class _Entry:
    partition: int
    offset: int
    event: DecodedEvent


@dataclass
class _Batch:
    """What was consumed since the last commit, per topic."""

    entries: dict[str, list[_Entry]] = field(default_factory=dict)
    dead: list[tuple[Any, str]] = field(default_factory=list)  # (record, error)
    next_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    size: int = 0
    started: float = 0.0

    def add(self, record: Any, event: DecodedEvent | None, error: str | None) -> None:
        if not self.size:
            self.started = time.monotonic()
        self.size += 1
        self.next_offsets.setdefault(record.topic, {})[record.partition] = record.offset + 1
        if event is not None:
            self.entries.setdefault(record.topic, []).append(_Entry(record.partition, record.offset, event))
        else:
            self.dead.append((record, error or "invalid"))


class KafkaLander:
    """``ragline lander``: consume both lineage topics and land them in Iceberg."""

    def __init__(self, config: KafkaConfig, landing: IcebergLanding, *, client_id: str = "ragline-lander") -> None:
        self._config = config
        self._landing = landing
        self._client_id = client_id
        self._tables = {config.answers_topic: ANSWER_TABLE, config.documents_topic: DOCUMENT_TABLE}
        self._consumer: Any = None
        self._dlq: Any = None
        self._batch = _Batch()
        self._active = 0.0  # when a record or an assignment last came
        self.report = LanderReport()

    def run(self, *, until_idle_s: float | None = None, stop: threading.Event | None = None) -> LanderReport:
        """Consume and land until ``stop`` is set or, with ``until_idle_s``, until nothing
        came for that long; what is pending is committed before returning."""
        self._open()
        started = self._active = time.monotonic()
        try:
            while not (stop is not None and stop.is_set()):
                polled = self._consumer.poll(timeout_ms=self._poll_timeout_ms(), update_offsets=True)
                if polled:
                    self._active = time.monotonic()
                    if self.report.first_record_at is None:
                        self.report.first_record_at = time.time()
                for records in polled.values():
                    self._take(records)
                if self._due():
                    self._commit()
                if until_idle_s is not None and self._idle(until_idle_s, started):
                    break
            self._commit()
        finally:
            self.close()
        return self.report

    def close(self) -> None:
        if self._dlq is not None:
            close_producer(self._dlq)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask what ended the run
                log.debug("closing the lander's consumer: %s", exc)
        self._consumer = self._dlq = None

    # --- consuming ---------------------------------------------------------------

    def _open(self) -> None:
        cfg = self._config
        self._landing.open()
        ensure_topics(cfg)
        limit = cfg.max_inline_bytes + HEADROOM
        with translated("joining the lander group"):
            self._consumer = KafkaConsumer(
                **cfg.client_options(), client_id=self._client_id, group_id=cfg.lander_group,
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_records=min(cfg.max_poll_records, cfg.lander_batch_size),
                fetch_max_bytes=max(cfg.fetch_max_bytes, limit), max_partition_fetch_bytes=max(8 << 20, limit),
                session_timeout_ms=cfg.session_timeout_ms, heartbeat_interval_ms=max(cfg.session_timeout_ms // 4, 100),
                metrics_enabled=False)
            for topic in self._tables:  # metadata first, so the first assignment has partitions to hand out
                self._consumer.partitions_for_topic(topic)
            self._consumer.subscribe(list(self._tables), listener=_Rebalance(self))

    def _take(self, records: Sequence[Any]) -> None:
        for record in records:
            self.report.consumed += 1
            try:
                event = from_record(record.headers or [], record.value)
                if (event.event_type == ANSWER_EVENT_TYPE) != (self._tables[record.topic] == ANSWER_TABLE):
                    raise InvalidEventError(f"event {event.event_id}: a {event.event_type} on topic {record.topic}")
                self._batch.add(record, event, None)
            except InvalidEventError as exc:
                self._batch.add(record, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - one record must never stop the stream (a poison pill)
                self._batch.add(record, None, f"{type(exc).__name__}: {str(exc)[:300]}")

    def _idle(self, until_idle_s: float, started: float) -> bool:
        """Nothing consumed for ``until_idle_s`` since the last record or assignment (joining
        the group does not count, unless no partition came within half a minute more)."""
        now = time.monotonic()
        if not self._consumer.assignment() and now - started < until_idle_s + 30:
            return False
        return now - self._active >= until_idle_s

    def _due(self) -> bool:
        batch = self._batch
        return batch.size >= self._config.lander_batch_size or (
            batch.size > 0 and time.monotonic() - batch.started >= self._config.lander_max_age_s)

    def _poll_timeout_ms(self) -> int:
        if not self._batch.size:
            return 500
        left = self._config.lander_max_age_s - (time.monotonic() - self._batch.started)
        return max(0, min(500, int(left * 1000)))

    def seek_to_landed(self, partitions: Sequence[TopicPartition], *, in_callback: bool = False) -> None:
        """Position each partition just after what Iceberg holds; else Kafka's committed
        offset (a hint); else the earliest record. In a rebalance callback (kafka-python's
        IO thread, where no blocking call may run) only Iceberg's are applied: the consumer
        itself then starts from the committed offset or the earliest."""
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, tps in by_topic.items():
            landed = landed_offsets(self._landing.table(self._tables[topic]), topic)
            for tp in tps:
                hint = landed.get(tp.partition)
                if hint is None and in_callback:
                    continue
                if hint is None:
                    with translated(f"reading the committed offset of {tp.topic}/{tp.partition}"):
                        hint = self._consumer.committed(tp)
                if hint is None:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, hint)

    def touch(self) -> None:
        """Partitions came: the idle clock starts again."""
        self._active = time.monotonic()

    def drop_pending(self, partitions: Sequence[TopicPartition]) -> None:
        """Forget buffered records of partitions this lander no longer owns."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        batch = self._batch
        for topic, entries in batch.entries.items():
            batch.entries[topic] = [e for e in entries if (topic, e.partition) not in lost]
        batch.dead = [(r, err) for r, err in batch.dead if (r.topic, r.partition) not in lost]
        for topic, offsets in batch.next_offsets.items():
            for partition in [p for p in offsets if (topic, p) in lost]:
                del offsets[partition]

    # --- committing --------------------------------------------------------------

    def commit_pending(self) -> None:
        """Commit now (on revocation, before the partitions go to another member). In the
        callback no Kafka offset is committed (a blocking call); Iceberg holds the truth."""
        self._commit(in_callback=True)

    def _commit(self, *, in_callback: bool = False) -> None:
        batch, self._batch = self._batch, _Batch()
        if not batch.size:
            return
        try:
            self._dead_letter(batch.dead)
            for topic, offsets in batch.next_offsets.items():
                if offsets:
                    self._commit_topic(topic, batch.entries.get(topic, []), offsets)
        except (LandingError, KafkaUnavailableError) as exc:
            # Nothing of the failed part is landed: re-read from the landed offsets.
            self.report.failures += 1
            log.warning("lander: commit failed, re-reading from the landed offsets: %s", exc)
            if not in_callback:  # (a revoked partition is re-read by its next owner, from the same offsets)
                self._rewind()
                time.sleep(1.0)
            return
        if not in_callback:
            self._commit_kafka(batch.next_offsets)

    def _commit_topic(self, topic: str, entries: list[_Entry], offsets: dict[int, int]) -> None:
        name = self._tables[topic]
        for _ in range(COMMIT_ATTEMPTS):
            table = self._landing.table(name)
            landed = landed_offsets(table, topic)
            advance = {p: o for p, o in offsets.items() if o > landed.get(p, 0)}
            fresh = [e for e in entries if e.offset >= landed.get(e.partition, 0)]
            self.report.already_landed += len(entries) - len(fresh)
            if not advance:
                return
            rows, duplicates = self._new_rows(table, fresh)
            summary = {OFFSETS_PROPERTY: _offsets_json(table, topic, landed | advance)}
            if not _append(table, self._arrow(name, table, rows), summary, f"landing {len(rows)} events from {topic}"):
                self.report.conflicts += 1  # another lander committed first: reload and re-check
                self.report.already_landed -= len(entries) - len(fresh)
                continue
            self.report.landed += len(rows)
            self.report.duplicates += duplicates
            self.report.commits += 1
            return
        raise LandingError(f"landing from {topic}: {COMMIT_ATTEMPTS} commits in a row lost to other landers")

    def _new_rows(self, table: Table, entries: list[_Entry]) -> tuple[list[_Entry], int]:
        """Entries whose event id is neither earlier in the batch nor in the table."""
        unique: dict[str, _Entry] = {}
        for entry in entries:
            unique.setdefault(entry.event.event_id, entry)
        found = existing_ids(table, [e.event for e in unique.values()])
        rows = [e for e in unique.values() if e.event.event_id not in found]
        return rows, len(entries) - len(rows)

    def _arrow(self, name: str, table: Table, rows: list[_Entry]) -> Any:
        if not rows:  # every record a duplicate or dead: the commit only moves the offsets
            return table.schema().as_arrow().empty_table()
        events = [OutboxEvent(r.event.outbox_seq or 0, r.event.event_id, r.event.event_type, r.event.tenant,
                              r.event.event_time, r.event.payload) for r in rows]
        topic = next(t for t, n in self._tables.items() if n == name)
        extra: dict[str, list[Any]] = {
            "outbox_seq": [r.event.outbox_seq for r in rows], "kafka_topic": [topic] * len(rows),
            "kafka_partition": [r.partition for r in rows], "kafka_offset": [r.offset for r in rows]}
        with translated_landing(f"building rows for {name}"):
            return rows_for(name, events, table.schema().as_arrow(), extra)

    def _dead_letter(self, dead: list[tuple[Any, str]]) -> None:
        """Send bad records to the DLQ and wait for the broker's acknowledgement."""
        if not dead:
            return
        with translated("sending bad records to the DLQ"):
            if self._dlq is None:
                self._dlq = KafkaProducer(**self._config.producer_options())
            futures = [self._dlq.send(
                self._config.dlq_topic, key=record.key, value=record.value,
                headers=[*(record.headers or []), (ERROR_HEADER, error.encode()[:4000]),
                         (ORIGIN_HEADER, f"{record.topic}/{record.partition}/{record.offset}".encode())])
                for record, error in dead]
            self._dlq.flush(timeout=self._config.delivery_timeout_ms / 1000 + 5)
            for future in futures:
                future.get(0)
        for record, error in dead:
            log.warning("lander: %s/%d/%d dead-lettered: %s", record.topic, record.partition, record.offset, error)
        self.report.dead_lettered += len(dead)

    def _commit_kafka(self, next_offsets: Mapping[str, Mapping[int, int]]) -> None:
        """The hint: Kafka's committed offsets follow Iceberg's (a fenced member's commit fails; fine)."""
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                   for t, parts in next_offsets.items() for p, o in parts.items()}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - only a hint; Iceberg holds the truth
            log.info("lander: Kafka offset commit skipped: %s", exc)

    def _rewind(self) -> None:
        try:
            self.seek_to_landed(list(self._consumer.assignment()))
        except LineageError as exc:
            log.warning("lander: cannot read the landed offsets yet: %s", exc)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # (kafka-python is untyped)
    def __init__(self, lander: KafkaLander) -> None:
        self._lander = lander

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self._lander.commit_pending()
        self._lander.drop_pending(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._lander.seek_to_landed(assigned, in_callback=True)
        self._lander.touch()


# --- offsets and ids in the table ----------------------------------------------------

def landed_offsets(table: Table, topic: str) -> dict[int, int]:
    """``topic``'s next offset per partition, from the newest snapshot that carries them."""
    raw = latest_property(table, OFFSETS_PROPERTY)
    return {int(p): int(o) for p, o in json.loads(raw).get(topic, {}).items()} if raw else {}


def _offsets_json(table: Table, topic: str, offsets: dict[int, int]) -> str:
    """The whole map (every topic this table was fed from) with ``topic``'s updated."""
    raw = latest_property(table, OFFSETS_PROPERTY)
    everything: dict[str, dict[str, int]] = json.loads(raw) if raw else {}
    everything[topic] = {str(p): o for p, o in sorted(offsets.items())}
    return json.dumps(everything, sort_keys=True)


def _append(table: Table, rows: Any, summary: dict[str, str], doing: str) -> bool:
    """Append in one commit; False when another writer committed first (optimistic concurrency)."""
    with translated_landing(doing):
        try:
            table.append(rows, snapshot_properties=summary)
        except CommitFailedException:
            return False
    return True


def existing_ids(table: Table, events: Sequence[DecodedEvent]) -> set[str]:
    """Which of these events' ids the table holds: a scan of the ``event_id`` column of
    their day partitions, filtered on just those ids (files and row groups whose id range
    misses them are skipped)."""
    if not events or table.current_snapshot() is None:
        return set()
    days = sorted({e.event_time.date() for e in events})
    window = day_filter(days[0]) if len(days) == 1 else Or(*[day_filter(d) for d in days])
    wanted = sorted({e.event_id for e in events})
    # The id range prunes files and row groups by their column bounds (answer ids are
    # time-ordered UUIDv7s, so only recent files qualify); membership is then one Arrow
    # pass. An In filter of thousands of literals costs more to plan than the read.
    span = And(GreaterThanOrEqual("event_id", wanted[0]), LessThanOrEqual("event_id", wanted[-1]))  # type: ignore[call-arg]
    with translated_landing("looking up landed event ids"):
        found = table.scan(row_filter=And(span, window), selected_fields=("event_id",)).to_arrow()["event_id"]
        hits = found.filter(pc.is_in(found, value_set=pa.array(wanted)))
    return set(hits.to_pylist())

