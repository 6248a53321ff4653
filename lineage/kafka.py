"""Lineage on Kafka (kafka-python): the CloudEvents binary codec, topic set-up and the
relay's Kafka target.

Records are CloudEvents in binary content mode: every attribute is a ``ce_*`` header
(``datacontenttype`` is ``content-type``), the value is the event's ``data`` as JSON, the
key is the event's subject (the answer_id of an answer event, the document_id of a
document event, so one document's events keep their order). The outbox's sequence
number rides along in the ``ragline_outbox_seq`` header (not a CloudEvent attribute).

Partitioning is CRC-32 of the key modulo the partition count (librdkafka's
``consistent`` partitioner): kafka-python's murmur2 is pure Python and cost a tenth of
the producer's time. kafka-python is imported here only, so the rest of ``lineage`` runs
without it (the embedded default has no Kafka).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import fastjsonschema
import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from lineage.base import OutboxEvent
from lineage.errors import InvalidEventError, LineageError
from lineage.events import EVENT_TYPES, SCHEMA_DIR, dataschema_uri, utc
from schemas.errors import ConfigurationError, TransientError
from schemas.lineage import ANSWER_EVENT_TYPE

log = logging.getLogger(__name__)

SEQ_HEADER = "ragline_outbox_seq"
ERROR_HEADER = "ragline_error"
ORIGIN_HEADER = "ragline_origin"  # topic/partition/offset of a dead-lettered record
HEADROOM = 1024 * 1024  # framing and headers on top of the largest inline value
_CONTENT_TYPE = "content-type"
_JSON = "application/json"


class KafkaUnavailableError(LineageError, TransientError):
    """The broker did not acknowledge (down, unreachable, timed out): the outbox keeps the rows."""


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """What lineage needs of ``RAGLINE_KAFKA__*`` (``services`` builds it from Settings)."""

    bootstrap: str
    answers_topic: str = "ragline.lineage.answers"
    documents_topic: str = "ragline.lineage.documents"
    dlq_topic: str = "ragline.lineage.dlq"
    max_inline_bytes: int = 16 * 1024 * 1024
    partitions: int = 3
    replication_factor: int = 1
    linger_ms: int = 20
    batch_size: int = 1024 * 1024
    compression: str = "zstd"
    retries: int = 5
    request_timeout_ms: int = 15_000
    delivery_timeout_ms: int = 30_000
    max_block_ms: int = 10_000
    lander_group: str = "ragline-lander"
    lander_batch_size: int = 5000
    lander_max_age_s: float = 5.0
    session_timeout_ms: int = 10_000
    max_poll_records: int = 5000
    fetch_max_bytes: int = 64 * 1024 * 1024
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    @property
    def topics(self) -> tuple[str, str]:
        return self.answers_topic, self.documents_topic

    def topic_for(self, event_type: str) -> str:
        return self.answers_topic if event_type == ANSWER_EVENT_TYPE else self.documents_topic

    def client_options(self) -> dict[str, Any]:
        """Connection options every client (producer, consumer, admin) shares."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap.split(","),
                                   "security_protocol": self.security_protocol,
                                   "request_timeout_ms": self.request_timeout_ms,
                                   "bootstrap_timeout_ms": self.max_block_ms}
        if self.sasl_mechanism:
            options |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.sasl_username,
                        "sasl_plain_password": self.sasl_password}
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    def producer_options(self) -> dict[str, Any]:
        _check_codec(self.compression)
        return self.client_options() | {
            "acks": "all", "enable_idempotence": True, "retries": self.retries,
            "linger_ms": self.linger_ms, "batch_size": self.batch_size,
            "compression_type": None if self.compression == "none" else self.compression,
            "max_request_size": self.max_inline_bytes + HEADROOM,
            "delivery_timeout_ms": max(self.delivery_timeout_ms, self.request_timeout_ms + self.linger_ms),
            "max_block_ms": self.max_block_ms, "metrics_enabled": False,
        }


def _check_codec(compression: str) -> None:
    """A codec kafka-python cannot load is a configuration error that names the setting."""
    from kafka import codec

    available = {"none": True, "gzip": codec.has_gzip(), "zstd": codec.has_zstd(), "lz4": codec.has_lz4(),
                 "snappy": codec.has_snappy()}
    if not available.get(compression, False):
        modules = {"zstd": "zstandard", "lz4": "lz4", "snappy": "python-snappy"}
        raise ConfigurationError(f"RAGLINE_KAFKA__COMPRESSION={compression!r}: not available here"
                                 + (f" (install {modules[compression]})" if compression in modules else ""))


# --- the codec ------------------------------------------------------------------------

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record as sent: binary content mode."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


def to_record(event: OutboxEvent, config: KafkaConfig) -> KafkaRecord:
    """An outbox row (structured-mode JSON) as a binary-mode record."""
    envelope, data = _split(event)
    headers: Headers = []
    for name, attribute in envelope.items():
        if attribute is None:
            continue
        text = attribute if isinstance(attribute, str) else json.dumps(attribute)
        headers.append((_CONTENT_TYPE if name == "datacontenttype" else f"ce_{name}", text.encode()))
    headers.append((SEQ_HEADER, str(event.seq).encode()))
    key = str(envelope.get("subject") or event.event_id).encode()
    return KafkaRecord(config.topic_for(event.event_type), key, data, headers)


_DATA_MEMBER = ', "data": '


def _split(event: OutboxEvent) -> tuple[dict[str, Any], bytes]:
    """The envelope's attributes, and ``data``'s JSON text as it stands in the payload.

    ``serialize`` (the CloudEvents SDK's JSON format) writes scalar attributes, then
    ``data`` last: the first ``, "data": `` is that member (inside a JSON string every
    quote is escaped), so the envelope parses alone and ``data`` is sliced, not
    re-encoded. Any other shape is parsed in full."""
    payload = event.payload
    at = payload.find(_DATA_MEMBER)
    if at > 0 and payload.endswith("}}") and payload.startswith("{", at + len(_DATA_MEMBER)):
        try:
            envelope = json.loads(payload[:at] + "}")
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and all(not isinstance(v, dict | list) for v in envelope.values()):
            return envelope, payload[at + len(_DATA_MEMBER):-1].encode()
    try:
        parsed = json.loads(payload)
    except ValueError as exc:
        raise InvalidEventError(f"outbox event {event.event_id}: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), dict):
        raise InvalidEventError(f"outbox event {event.event_id} has no JSON object as data")
    data = parsed.pop("data")
    return parsed, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A record the lander accepted: the envelope from the headers, ``data`` validated."""

    event_id: str
    event_type: str
    tenant: str
    event_time: datetime
    payload: str  # the structured-mode CloudEvent JSON, as the outbox holds it
    outbox_seq: int | None


def from_record(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> DecodedEvent:
    """Parse and validate a binary-mode record; :class:`InvalidEventError` says why not."""
    attributes: dict[str, str] = {}
    seq: int | None = None
    try:
        for name, raw in headers:
            lowered = name.lower()
            if lowered.startswith("ce_"):
                attributes[lowered[3:]] = (raw or b"").decode()
            elif lowered == _CONTENT_TYPE:
                attributes["datacontenttype"] = (raw or b"").decode()
            elif lowered == SEQ_HEADER:
                seq = int(raw)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidEventError(f"unreadable header: {exc}") from exc
    event_id = attributes.get("id", "")
    event_type = attributes.get("type", "")
    where = f"event {event_id or '(no ce_id)'}"
    for name in ("id", "source", "type", "time", "tenant"):
        if not attributes.get(name):
            raise InvalidEventError(f"{where}: missing the ce_{name} header")
    if attributes.get("specversion") != "1.0":
        raise InvalidEventError(f"{where}: ce_specversion {attributes.get('specversion')!r} is not 1.0")
    if event_type not in EVENT_TYPES:
        raise InvalidEventError(f"{where}: unknown type {event_type!r}")
    if attributes.get("dataschema") != dataschema_uri(event_type):
        raise InvalidEventError(f"{where}: dataschema {attributes.get('dataschema')!r} is not {event_type}'s")
    if attributes.get("datacontenttype", _JSON).split(";")[0].strip() != _JSON:
        raise InvalidEventError(f"{where}: content-type {attributes['datacontenttype']!r} is not {_JSON}")
    try:
        moment = utc(datetime.fromisoformat(attributes["time"]))
        text = (value or b"").decode()
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEventError(f"{where}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    try:
        _fast_validator(event_type)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidEventError(f"{where} ({event_type}): {exc.message[:300]}") from exc
    envelope = json.dumps(attributes, ensure_ascii=False)  # then data spliced in as received: no re-encoding
    return DecodedEvent(event_id, event_type, attributes["tenant"], moment, f"{envelope[:-1]}, \"data\": {text}}}", seq)


@cache
def _fast_validator(event_type: str) -> Any:
    """The type's JSON Schema compiled to Python (fastjsonschema): ~45 µs an answer event
    against ~1 ms for ``jsonschema``, which would cap the lander near 1,000 events/s. The
    schemas use only keywords whose meaning is the same in draft 7 and 2020-12; a test
    holds both validators to the same verdicts."""
    schema = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8"))
    return fastjsonschema.compile(schema)


def partition_for(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


# --- clients ----------------------------------------------------------------------------

@contextmanager
def translated(doing: str) -> Iterator[None]:
    """kafka-python errors become a transient :class:`KafkaUnavailableError`."""
    try:
        yield
    except KafkaUnavailableError:
        raise
    except kafka_errors.KafkaError as exc:
        raise KafkaUnavailableError(f"{doing}: {type(exc).__name__}: {exc}") from exc


def ensure_topics(config: KafkaConfig, *topics: str) -> None:
    """Create the lineage topics when missing (partitions, replication, and a record limit
    sized like the broker's: the inline limit plus headroom)."""
    wanted = topics or (*config.topics, config.dlq_topic)
    with translated("creating the lineage topics"):
        admin = KafkaAdminClient(**config.client_options())
        try:
            existing = set(admin.list_topics())
            new = [NewTopic(t, config.partitions, config.replication_factor,
                            topic_configs={"max.message.bytes": str(config.max_inline_bytes + HEADROOM)})
                   for t in wanted if t not in existing]
            if new:  # (another process may create them meanwhile)
                with suppress(kafka_errors.TopicAlreadyExistsError):
                    admin.create_topics(new, timeout_ms=config.request_timeout_ms)
        finally:
            admin.close()


class KafkaPublisher:
    """The relay's Kafka target: a batch counts as delivered only once the broker
    acknowledged every record of it (``acks=all``, idempotent producer). A row that cannot
    be a record (larger than ``max_inline_bytes``, no JSON data) goes to the DLQ topic as
    its id and error (its payload stays in the outbox), so it never blocks the relay. A failure raises
    :class:`KafkaUnavailableError`; the relay keeps the batch and sends it again later, so
    a record may reach Kafka twice (the lander dedups by event id). The producer is built
    on first use and rebuilt after a failure (a fresh idempotent session)."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._producer: Any = None
        self._partitions: dict[str, int] = {}

    def open(self) -> KafkaPublisher:
        ensure_topics(self._config)
        with translated("connecting the lineage producer"):
            self._producer = KafkaProducer(**self._config.producer_options())
            self._partitions = {t: len(self._producer.partitions_for(t) or ()) or self._config.partitions
                                for t in self._config.topics}
        return self

    def deliver(self, batch_id: str, events: Sequence[OutboxEvent]) -> int:
        if self._producer is None:
            self.open()
        try:
            with translated(f"publishing batch {batch_id} ({len(events)} events)"):
                self._send_all(events)
        except KafkaUnavailableError:
            self.close()
            raise
        return len(events)

    def _send_all(self, events: Sequence[OutboxEvent]) -> None:
        producer, config = self._producer, self._config
        futures = []
        for event in events:
            try:
                record = to_record(event, config)
                if len(record.value) > config.max_inline_bytes:
                    raise InvalidEventError(f"event {event.event_id}: {len(record.value)} bytes exceed "
                                            f"RAGLINE_KAFKA__MAX_INLINE_BYTES={config.max_inline_bytes}")
            except InvalidEventError as exc:  # never a stuck relay: the row's id and error go to the DLQ
                log.error("relay: outbox row %d dead-lettered: %s", event.seq, exc)
                record = KafkaRecord(config.dlq_topic, event.event_id.encode(), b"",
                                     [(ERROR_HEADER, str(exc).encode()[:4000]), (SEQ_HEADER, str(event.seq).encode()),
                                      ("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())])
                futures.append(producer.send(record.topic, key=record.key, value=record.value, headers=record.headers))
                continue
            partition = partition_for(record.key, self._partitions[record.topic])
            futures.append(producer.send(record.topic, key=record.key, value=record.value,
                                         headers=record.headers, partition=partition))
        producer.flush(timeout=(config.delivery_timeout_ms + config.linger_ms) / 1000 + 5)
        for future in futures:  # every record acknowledged, or the batch is not delivered
            if not future.is_done:
                raise KafkaUnavailableError("the broker did not acknowledge in time")
            future.get(0)

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            close_producer(producer)


def close_producer(producer: Any, timeout_s: float = 1.0) -> None:
    """Close, and if records are still pending (the broker is down) abandon them: kafka-python's
    ``close`` flushes first and raises on timeout before stopping its sender thread, which
    then retries on and is closed again, noisily, when collected."""
    try:
        producer.close(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - closing a broken producer must not mask the failure
        log.debug("closing a Kafka producer: %s", exc)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()  # pending batches fail; nothing waits on them any more
        producer._closed = True
