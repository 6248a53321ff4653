"""Streaming ingestion: the use cases behind ``ragline worker`` (and ``ragline serve
--worker``) and ``ragline produce``.

The worker reads ``ai.ragline.document.upsert.v1`` / ``delete.v1`` requests from a
consumer group and runs them through the ingestion use case, as ``ragline ingest``
does: the upserts of a batch are one ``Ingestion.ingest_sources`` run (so whatever
overlap that run has, the worker has), with the next documents decoded and fetched
ahead (``worker_in_flight``) while one is indexed. A batch's requests are applied in
partition-offset order, so one document's requests (one key, one partition) keep their
order, and a delete waits for the upserts before it.

- **At-least-once**: a batch's offsets are committed only after all of its documents are
  indexed (or deleted, or dead-lettered and acknowledged by the broker). A worker killed
  mid-batch leaves them uncommitted; the next one indexes them again, which is
  idempotent (chunk ids are deterministic; an unchanged document costs nothing).
- **Dead letters**: a record that is not a valid request, a ``uri`` the fetch policy
  refuses or cannot fetch, a document that fails extraction: the original record
  (key, value, headers) goes to the DLQ with the error, and the stream goes on.
- **Transient failures** (the embedder, the index, Kafka): nothing of the batch is
  committed; its partitions are read again from its first offsets after a back-off.
- **Stopping** (SIGTERM): the batch in flight finishes and is committed, then the run ends.
- The document events (``indexed.v1`` / ``deleted.v1``) enter the lineage outbox with the
  registry change, as for every entry point.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.pipeline import DocumentOutcome
from ingest.sources import SourceFailure
from schemas.documents import SourceDocument
from schemas.errors import EmbeddingError, RaglineError, TerminalError, TransientError, VectorIndexError
from services.ingest_requests import (
    DELETE_TYPE,
    UPSERT_TYPE,
    DeleteRequest,
    EncodedRequest,
    IngestRequest,
    InvalidRequest,
    UpsertRequest,
    decode,
    delete_data,
    encode,
    upsert_data,
    uri_data,
)
from services.ingestion import IngestTargets, LocalSources

if TYPE_CHECKING:
    from services.ingest_kafka import Consumed, Offsets
    from services.ingestion import Ingestion

log = logging.getLogger("ragline.worker")

#: Failures worth reading the batch again for; any other error ends the run uncommitted.
RETRYABLE = (TransientError, VectorIndexError, EmbeddingError)


class RequestLog(Protocol):
    """The worker's Kafka side (``services.ingest_kafka.KafkaRequestLog``)."""

    assigned_at: float

    def open(self) -> None: ...
    def poll(self, timeout_ms: int) -> list[Consumed]: ...
    def assigned(self) -> bool: ...
    def commit(self, offsets: Offsets) -> bool: ...
    def rewind(self, offsets: Offsets) -> None: ...
    def dead_letter(self, records: Sequence[tuple[Consumed, str]]) -> None: ...
    def lag(self) -> dict[int, int]: ...
    def close(self) -> None: ...


class RequestSink(Protocol):
    """``ragline produce``'s Kafka side (``services.ingest_kafka.KafkaRequestProducer``)."""

    @property
    def max_value_bytes(self) -> int: ...
    def send(self, records: Sequence[EncodedRequest]) -> int: ...
    def close(self) -> None: ...


class WorkerStopped(RaglineError):
    """The run cannot go on (the embedding budget is spent); the batch stays uncommitted."""


@dataclass
class WorkerReport:
    consumed: int = 0  # records read
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    not_found: int = 0  # deletes of a document already gone (a redelivery, say)
    dead_lettered: int = 0
    batches: int = 0  # batches committed
    retries: int = 0  # batches read again after a transient failure
    lost_commits: int = 0  # commits refused because the partitions moved to another worker
    chunks: int = 0
    first_record_at: float | None = None  # wall-clock time of the first record (throughput)
    last_commit_at: float | None = None

    @property
    def indexed(self) -> int:
        return self.new + self.updated


class WorkerMetrics:
    """Prometheus metrics of one worker, in the registry given (the API's, under ``serve
    --worker``) or one of its own (``ragline worker --metrics-port``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.prometheus = registry if registry is not None else CollectorRegistry()
        self.requests = Counter("ragline_worker_requests", "ingestion requests handled, by result", ["result"],
                                registry=self.prometheus)
        self.batch_seconds = Histogram("ragline_worker_batch_duration_seconds", "one batch: indexed and committed",
                                       registry=self.prometheus,
                                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self._lag: dict[int, int] = {}
        self._rate = 0.0
        self.prometheus.register(_WorkerGauges(self))

    def observe_batch(self, results: dict[str, int], seconds: float) -> None:
        for result, count in results.items():
            if count:
                self.requests.labels(result).inc(count)
        self.batch_seconds.observe(seconds)
        documents = sum(results.values())
        self._rate = documents / seconds if seconds > 0 else 0.0

    def observe_lag(self, lag: dict[int, int]) -> None:
        self._lag = dict(lag)


class _WorkerGauges(Collector):
    """``ragline_worker_consumer_lag`` per partition (records behind the end of the topic)
    and ``ragline_worker_documents_per_second`` over the last batch."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("ragline_worker_consumer_lag", "records behind the end of the requests topic",
                                labels=["partition"])
        for partition, behind in sorted(self._metrics._lag.items()):
            lag.add_metric([str(partition)], behind)
        yield lag
        yield GaugeMetricFamily("ragline_worker_documents_per_second", "requests handled per second, last batch",
                                value=self._metrics._rate)


@dataclass
class _Batch:
    first: dict[tuple[str, int], int] = field(default_factory=dict)  # where to read again after a failure
    next: dict[tuple[str, int], int] = field(default_factory=dict)  # what to commit
    dead: list[tuple[Consumed, str]] = field(default_factory=list)
    results: dict[str, int] = field(default_factory=dict)  # WorkerReport field -> count
    chunks: int = 0

    def count(self, result: str, n: int = 1) -> None:
        self.results[result] = self.results.get(result, 0) + n


class IngestWorker:
    def __init__(self, *, ingestion: Ingestion, log_: RequestLog, in_flight: int, max_bytes: int,
                 metrics: WorkerMetrics | None = None, max_backoff_s: float = 30.0) -> None:
        self._ingestion = ingestion
        self._log = log_
        self._in_flight = in_flight
        self._max_bytes = max_bytes
        self.metrics = metrics or WorkerMetrics()
        self._max_backoff = max_backoff_s
        self._failures = 0
        self._active = 0.0
        self.report = WorkerReport()

    def run(self, *, until_idle_s: float | None = None, stop: threading.Event | None = None) -> WorkerReport:
        """Consume until ``stop`` is set or, with ``until_idle_s``, until nothing came for
        that long; a batch begun is finished and committed first."""
        stop = stop or threading.Event()
        self._log.open()
        started = self._active = time.monotonic()
        try:
            while not stop.is_set():
                records = self._log.poll(500)
                if records:
                    self._active = time.monotonic()
                    if self.report.first_record_at is None:
                        self.report.first_record_at = time.time()
                    self._handle(records, stop)
                    self._active = time.monotonic()  # idle counts from the end of the last batch
                self.metrics.observe_lag(self._log.lag())
                if until_idle_s is not None and self._idle(until_idle_s, started):
                    break
        finally:
            self._log.close()
        return self.report

    def _idle(self, until_idle_s: float, started: float) -> bool:
        """Nothing consumed for ``until_idle_s`` since the last record or assignment (joining
        the group does not count, unless no partition came within half a minute more)."""
        now = time.monotonic()
        if not self._log.assigned() and now - started < until_idle_s + 30:
            return False
        return now - max(self._active, self._log.assigned_at) >= until_idle_s

    def _handle(self, records: list[Consumed], stop: threading.Event) -> None:
        started = time.perf_counter()
        batch = _Batch()
        try:
            self._apply(records, batch)
            self._log.dead_letter(batch.dead)  # acknowledged before the commit moves past them
            committed = self._log.commit(batch.next)
        except RETRYABLE as exc:
            self._failures += 1
            self.report.retries += 1
            delay = min(2.0 ** self._failures, self._max_backoff)
            log.warning("worker: batch failed (%s); reading it again in %.0f s", exc, delay)
            self._log.rewind(batch.first)
            stop.wait(delay)
            return
        self._failures = 0
        for record, error in batch.dead:
            log.warning("worker: %s/%d/%d dead-lettered: %s", record.topic, record.partition, record.offset, error)
        batch.count("dead_lettered", len(batch.dead))
        if committed:
            self.report.batches += 1
            self.report.last_commit_at = time.time()
        else:
            self.report.lost_commits += 1
        self.report.chunks += batch.chunks
        for name, count in batch.results.items():
            setattr(self.report, name, getattr(self.report, name) + count)
        self.metrics.observe_batch(batch.results, time.perf_counter() - started)

    def _apply(self, records: list[Consumed], batch: _Batch) -> None:
        """Decode, then apply in order: runs of upserts as one ingest run, each delete alone."""
        run: list[tuple[Consumed, UpsertRequest]] = []
        for record in records:
            where = (record.topic, record.partition)
            batch.first.setdefault(where, record.offset)
            batch.next[where] = record.offset + 1
            self.report.consumed += 1
            try:
                request: IngestRequest = decode(record.headers, record.value)
            except InvalidRequest as exc:
                batch.dead.append((record, str(exc)))
                continue
            if isinstance(request, UpsertRequest):
                run.append((record, request))
                continue
            self._upserts(run, batch)
            run = []
            self._delete(request, batch)
        self._upserts(run, batch)

    def _delete(self, request: DeleteRequest, batch: _Batch) -> None:
        batch.count("deleted" if self._ingestion.delete(request.tenant, request.document_id) else "not_found")

    def _upserts(self, run: list[tuple[Consumed, UpsertRequest]], batch: _Batch) -> None:
        if not run:
            return
        expected: deque[Consumed] = deque()

        def on_document(outcome: DocumentOutcome) -> None:
            record = expected.popleft()
            if outcome.status == "failed":
                batch.dead.append((record, f"{outcome.source_uri}: {outcome.error or 'failed'}"))
                return
            batch.count(outcome.status)
            if outcome.status != "unchanged":
                batch.chunks += outcome.chunks

        sources = self._prefetched(run, batch, expected)
        summary = self._ingestion.ingest_sources(sources, on_document=on_document).summary
        if summary.stopped:
            raise WorkerStopped(f"worker stopped: {summary.stopped}")

    def _prefetched(self, run: list[tuple[Consumed, UpsertRequest]], batch: _Batch,
                    expected: deque[Consumed]) -> Iterator[SourceDocument | SourceFailure]:
        """The run's documents in order, up to ``in_flight`` decoded and fetched ahead of
        the one being indexed; a refused or failed fetch is a dead letter."""
        pending = iter(run)
        window: deque[tuple[Consumed, Future[SourceDocument]]] = deque()
        with ThreadPoolExecutor(self._in_flight, thread_name_prefix="ragline-fetch") as pool:
            def fill() -> None:
                while len(window) < self._in_flight:
                    item = next(pending, None)
                    if item is None:
                        return
                    window.append((item[0], pool.submit(self._source, item[1])))

            fill()
            while window:
                record, future = window.popleft()
                try:
                    source = future.result()
                except TerminalError as exc:
                    batch.dead.append((record, str(exc)))
                    fill()
                    continue
                fill()
                expected.append(record)
                yield source

    def _source(self, request: UpsertRequest) -> SourceDocument:
        if request.content is not None:
            return request.source(request.content)
        assert request.uri is not None  # the schema requires content or a uri
        return request.source(self._ingestion.fetch_for_tenant(request.uri, self._max_bytes))


class BackgroundWorker:
    """The worker as a thread of ``ragline serve --worker``, over the server's Application
    (the embedded index has one process). ``stop`` finishes and commits the batch in
    flight. A run that fails (the broker unreachable at start, a bug) is logged and
    started again after a back-off, so the server never silently stops ingesting."""

    def __init__(self, make: Callable[[], IngestWorker], max_backoff_s: float = 30.0) -> None:
        self._make = make
        self._max_backoff = max_backoff_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ragline-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 120.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self._make().run(stop=self._stopping)
                return
            except Exception:  # a failed run must not end ingestion silently while the server runs
                log.exception("worker: run failed; starting again in %.0f s", delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self._max_backoff)


# --- producing ------------------------------------------------------------------------

@dataclass(frozen=True)
class ProduceRequest:
    targets: list[str]
    tenant: str
    access_tags: tuple[str, ...] = ()
    delete: bool = False
    prune_root: str | None = None  # also delete the documents of this folder whose source is gone
    follow_symlinks: bool = False


@dataclass
class ProduceReport:
    upserts: int = 0
    deletes: int = 0
    pruned: list[str] = field(default_factory=list)  # source URIs whose delete.v1 was sent by --prune
    failures: list[dict[str, str]] = field(default_factory=list)  # sources not sent, and why


class Producer:
    """``ragline produce``: requests for paths and URLs, with the walk, the ``source_uri``
    and so the ``document_id`` of ``ragline ingest``. Local files travel inline; a URL
    travels as ``uri``, fetched by the worker under the API's fetch rules."""

    #: One flush per this many records or bytes: memory stays bounded however large the tree.
    FLUSH_RECORDS, FLUSH_BYTES = 500, 64 << 20

    def __init__(self, *, local: LocalSources, sink: RequestSink, deployment: str) -> None:
        self._local = local
        self._sink = sink
        self._deployment = deployment
        self._pending: list[EncodedRequest] = []
        self._pending_bytes = 0

    def produce(self, request: ProduceRequest) -> ProduceReport:
        root = LocalSources.folder(request.prune_root) if request.prune_root else None  # checked before any send
        report = ProduceReport()
        seen: set[str] = set()
        try:
            for target in request.targets:
                if request.delete:
                    self._deletes(request, target, report)
                else:
                    self._upserts(request, target, report, seen)
            self._flush()  # the upserts first: a renamed file is indexed before its old name goes
            if root is not None:
                for record in self._local.gone(request.tenant, root, seen):
                    self._add(encode(DELETE_TYPE, delete_data(request.tenant, document_id=record.document_id),
                                     deployment=self._deployment))
                    report.pruned.append(record.source_uri)
                    report.deletes += 1
            self._flush()
        finally:
            self._sink.close()
        return report

    def _upserts(self, request: ProduceRequest, target: str, report: ProduceReport, seen: set[str]) -> None:
        if _is_url(target):
            self._add(encode(UPSERT_TYPE, uri_data(request.tenant, target, request.access_tags),
                             deployment=self._deployment))
            report.upserts += 1
            return
        walk = IngestTargets([target], request.tenant, request.access_tags, follow_symlinks=request.follow_symlinks)
        for source in self._local.walk(walk):
            seen.add(source.source_uri)
            if isinstance(source, SourceFailure):
                report.failures.append({"source": source.source_uri, "error": source.error})
                continue
            record = encode(UPSERT_TYPE, upsert_data(source), deployment=self._deployment)
            if len(record.value) > self._sink.max_value_bytes:
                report.failures.append({"source": source.source_uri, "error": (
                    f"{len(record.value):,} bytes as a request exceed RAGLINE_KAFKA__MAX_INLINE_BYTES="
                    f"{self._sink.max_value_bytes:,}; ingest it with `ragline ingest` or the API")})
                continue
            self._add(record)
            report.upserts += 1

    def _deletes(self, request: ProduceRequest, target: str, report: ProduceReport) -> None:
        """A URL or a file by its source_uri (it may be gone already); a folder: every
        document registered from under it."""
        if not _is_url(target) and os.path.isdir(target):
            for record in self._local.registered_under(request.tenant, LocalSources.folder(target, "--delete")):
                self._add(encode(DELETE_TYPE, delete_data(request.tenant, document_id=record.document_id),
                                 deployment=self._deployment))
                report.deletes += 1
            return
        uri = target if _is_url(target) else os.path.realpath(target)
        self._add(encode(DELETE_TYPE, delete_data(request.tenant, source_uri=uri), deployment=self._deployment))
        report.deletes += 1

    def _add(self, record: EncodedRequest) -> None:
        self._pending.append(record)
        self._pending_bytes += len(record.value)
        if len(self._pending) >= self.FLUSH_RECORDS or self._pending_bytes >= self.FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._sink.send(self._pending)
        self._pending, self._pending_bytes = [], 0


def _is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


class Streaming:
    """The composition root's handle on streaming ingestion: a worker or a producer, built
    on demand (the producer never opens the index, so it runs beside a server that owns it)."""

    def __init__(self, *, ingestion: Callable[[], Ingestion], local: LocalSources,
                 request_log: Callable[[str], RequestLog], request_sink: Callable[[], RequestSink],
                 deployment: str, in_flight: int, max_bytes: int) -> None:
        self._ingestion = ingestion
        self._local = local
        self._request_log = request_log
        self._request_sink = request_sink
        self._deployment = deployment
        self._in_flight = in_flight
        self._max_bytes = max_bytes

    def worker(self, *, client_id: str = "ragline-worker", metrics: WorkerMetrics | None = None) -> IngestWorker:
        log_ = self._request_log(client_id)  # first: a missing broker setting fails before the model loads
        return IngestWorker(ingestion=self._ingestion(), log_=log_, in_flight=self._in_flight,
                            max_bytes=self._max_bytes, metrics=metrics)

    def background_worker(self, metrics: WorkerMetrics | None = None) -> BackgroundWorker:
        metrics = metrics or WorkerMetrics()
        return BackgroundWorker(lambda: self.worker(client_id="ragline-serve-worker", metrics=metrics))

    def produce(self, request: ProduceRequest) -> ProduceReport:
        return Producer(local=self._local, sink=self._request_sink(), deployment=self._deployment).produce(request)
