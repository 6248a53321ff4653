"""The outbox relay: moves pending outbox rows to a :class:`RelayTarget` in batches.

Delivery state lives in ``outbox_pending`` (one small row per undelivered event; the
``outbox`` row with its payload is never updated). Each batch is first *claimed* (pending
rows get a ``batch_id`` by compare-and-swap, so two relays never take the same row), then
delivered under that id, then marked sent by deleting its pending rows. A relay that dies between delivering and
marking leaves a claimed batch behind; after ``claim_timeout_s`` any relay takes it
over and delivers it again under the same id, which the target skips (its commit is in
the Iceberg snapshot history). Claims, not a high-water mark on ``seq``: with
concurrent writers on PostgreSQL a smaller ``seq`` can commit after a larger one, and
a high-water mark would silently skip it.

Batching: a batch is landed once ``batch_size`` rows are pending or the oldest pending
row is ``max_age_s`` old (few large Iceberg commits, bounded latency); ``drain`` lands
everything now. Pending rows are taken oldest first.

Streams whose process died mid-stream (SIGKILL, OOM) would stay ``streaming`` with no
event for ever; given the store, each pass first finalizes streams begun more than
``stream_stale_s`` ago as ``incomplete`` with their event (the event of a stream cut
short), which the same pass can then deliver. ``stream_stale_s`` must exceed the
generation timeout, so that a live stream of another replica is never cut.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from lineage.base import OutboxEvent, RelayTarget
from lineage.errors import store_error
from lineage.events import utc
from lineage.store import SqlLineageStore
from lineage.tables import outbox, outbox_pending
from schemas import ids
from schemas.errors import RaglineError

log = logging.getLogger(__name__)


@dataclass
class RelayReport:
    batches: int = 0
    delivered: int = 0  # outbox rows marked sent
    written: int = 0  # events newly written by the target (less on a redelivery)
    taken_over: int = 0  # stale batches of a dead relay delivered again
    streams_finalized: int = 0  # streams of a dead process finalized as incomplete (their events queued)


class OutboxRelay:
    def __init__(self, engine: Engine, target: RelayTarget, *, batch_size: int = 10_000, max_age_s: float = 5.0,
                 claim_timeout_s: float = 60.0, streams: SqlLineageStore | None = None,
                 stream_stale_s: float = 300.0) -> None:
        self._engine = engine
        self._target = target
        self._streams = streams
        self._stream_stale_s = stream_stale_s
        self._batch_size = batch_size
        self._max_age = timedelta(seconds=max_age_s)
        self._claim_timeout = timedelta(seconds=claim_timeout_s)
        self._unfinished: set[str] = set()  # batches this relay claimed but could not finish

    def drain(self) -> RelayReport:
        """Land every pending row now (``ragline relay --once``)."""
        return self.run_once(force=True)

    def run_once(self, *, force: bool = False) -> RelayReport:
        """Finalize stale streams, finish stale or own unfinished batches, then land new
        batches while one is due."""
        report = RelayReport()
        if self._streams is not None:
            report.streams_finalized = len(self._streams.finalize_stale_streams(self._stream_stale_s))
        for batch_id in self._batches_to_finish():
            self._finish(batch_id, report)
            report.taken_over += 1
        while force or self._due():
            claimed = self._claim()
            if claimed is None:
                break
            self._finish(claimed, report)
        return report

    def pending(self) -> tuple[int, datetime | None]:
        """How many rows are pending, and when the oldest was written."""
        return outbox_backlog(self._engine)

    def _due(self) -> bool:
        count, oldest = self.pending()
        return count >= self._batch_size or (oldest is not None and datetime.now(UTC) - oldest >= self._max_age)

    def _claim(self) -> str | None:
        """Claim up to ``batch_size`` of the oldest unclaimed rows in one statement; the
        outer conditions make it a compare-and-swap when another relay claims concurrently."""
        batch_id = ids.uuid7()
        p = outbox_pending
        oldest = (select(p.c.seq).where(p.c.batch_id.is_(None)).order_by(p.c.seq).limit(self._batch_size)
                  .scalar_subquery())
        with self._store("claiming an outbox batch") as engine, engine.begin() as conn:
            claimed = conn.execute(
                update(p).where(p.c.seq.in_(oldest), p.c.batch_id.is_(None))
                .values(batch_id=batch_id, claimed_at=datetime.now(UTC))).rowcount
        return batch_id if claimed else None

    def _batches_to_finish(self) -> list[str]:
        cutoff = datetime.now(UTC) - self._claim_timeout
        p = outbox_pending
        query = select(p.c.batch_id, func.max(p.c.claimed_at)).where(p.c.batch_id.is_not(None)).group_by(p.c.batch_id)
        with self._store("finding unfinished batches") as engine, engine.begin() as conn:
            found = conn.execute(query).all()
            mine = [b for b, _ in found if b in self._unfinished]
            stale = [b for b, at in found if b not in self._unfinished and utc(at) <= cutoff]
            # Take a stale batch over by CAS on its claim time, so two relays never both redeliver it.
            taken = [b for b in stale if conn.execute(
                update(p).where(p.c.batch_id == b, p.c.claimed_at <= cutoff)
                .values(claimed_at=datetime.now(UTC))).rowcount]
        return mine + taken

    def _finish(self, batch_id: str, report: RelayReport) -> None:
        """Deliver a claimed batch and mark its rows sent; on failure keep it to retry."""
        self._unfinished.add(batch_id)
        with self._store(f"reading batch {batch_id}") as engine, engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.seq, outbox.c.event_id, outbox.c.event_type, outbox.c.tenant, outbox.c.event_time,
                       outbox.c.payload)
                .join_from(outbox_pending, outbox, outbox.c.seq == outbox_pending.c.seq)
                .where(outbox_pending.c.batch_id == batch_id).order_by(outbox_pending.c.seq)).all()
        batch = [OutboxEvent(seq, event_id, event_type, tenant, utc(event_time), payload)
                 for seq, event_id, event_type, tenant, event_time, payload in rows]
        written = self._target.deliver(batch_id, batch) if batch else 0
        with self._store(f"marking batch {batch_id} sent") as engine, engine.begin() as conn:
            sent = conn.execute(delete(outbox_pending).where(outbox_pending.c.batch_id == batch_id)).rowcount
        self._unfinished.discard(batch_id)
        report.batches += 1
        report.delivered += sent
        report.written += written

    def _store(self, doing: str) -> _StoreErrors:
        return _StoreErrors(self._engine, doing)


def outbox_backlog(engine: Engine) -> tuple[int, datetime | None]:
    """Rows not yet acknowledged by the relay's target, and when the oldest was written
    (its age is the relay's lag; the API exports both as metrics)."""
    query = select(func.count(), func.min(outbox_pending.c.created_at))
    with _StoreErrors(engine, "counting pending outbox rows"), engine.connect() as conn:
        count, oldest = conn.execute(query).one()
    return int(count), utc(oldest) if oldest else None


class _StoreErrors:
    """``with`` block yielding the engine; SQLAlchemy errors become a LineageStoreError."""

    def __init__(self, engine: Engine, doing: str) -> None:
        self._engine = engine
        self._doing = doing

    def __enter__(self) -> Engine:
        return self._engine

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, SQLAlchemyError):
            raise store_error(f"{self._doing}", exc) from exc


class RelayWorker:
    """The relay as a background thread inside ``ragline serve``: a pass every ``interval_s``;
    ``stop`` lands what is still pending before returning. A failed pass (Kafka or the lake
    down) never ends the thread: it logs, and the next pass waits twice as long, up to
    ``max_backoff_s``, while answers go on filling the outbox."""

    def __init__(self, relay: OutboxRelay, interval_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        self._relay = relay
        self._interval = interval_s
        self._max_backoff = max(max_backoff_s, interval_s)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ragline-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        delay = self._interval
        while not self._stopping.wait(delay):
            delay = self._interval if self._pass(force=False) else min(delay * 2, self._max_backoff)
        self._pass(force=True)

    def _pass(self, *, force: bool) -> bool:
        try:
            report = self._relay.run_once(force=force)
        except RaglineError as exc:  # transient store/lake/broker trouble: the rows stay pending for the next pass
            log.warning("lineage relay pass failed: %s", exc)
            return False
        except Exception:  # a bug must not end the thread silently while answers fill the outbox
            log.exception("lineage relay pass failed unexpectedly")
            return False
        if report.streams_finalized:
            log.warning("lineage relay: %d streams left unfinished by a dead process finalized as incomplete",
                        report.streams_finalized)
        if report.delivered:
            log.info("lineage relay: %d events delivered in %d batches", report.delivered, report.batches)
        return True
