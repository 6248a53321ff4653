"""Background ingestion jobs for large uploads (``202 Accepted`` + ``GET /v1/jobs/{id}``).

One worker thread: in the embedded default one process owns the index, and embedding
already uses every core. Jobs are rows of the ``jobs`` table, scoped by tenant, so a
job outlives the process that ran it: a finished job stays readable after a restart,
and a job whose document failed is ``failed`` with the document's error.

A job runs in the process that accepted the upload (its bytes are in that process's
memory). While it is queued or running, that process marks its ``heartbeat_at`` every
``heartbeat_s``; a job that missed ``STALE_BEATS`` marks has lost its process (killed,
crashed, restarted) and is failed with :data:`INTERRUPTED`, on start and on every beat,
by any runner sharing the database (API replicas never fail each other's live jobs).
Re-posting the document is safe: already indexed content is a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from schemas import ids
from schemas.errors import RaglineError, TransientError
from services.tables import jobs

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: the server stopped before this job finished; re-submit the document"
STALE_BEATS = 3
_UNFINISHED = ("queued", "running")


class JobStoreError(TransientError):
    """The jobs table could not be read or written (answered 503)."""


class JobFailed(RaglineError):  # noqa: N818 - a job's outcome, raised by its work
    """Raised by a job's work: the job is ``failed`` with this error, ``result`` kept."""

    def __init__(self, error: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.result = result


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    kind: str
    status: str  # queued | running | succeeded | failed
    created_at: datetime
    finished_at: datetime | None
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None

    def view(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "kind": self.kind, "status": self.status, "created_at": self.created_at,
                "finished_at": self.finished_at, "progress": self.progress, "result": self.result,
                "error": self.error}


class JobRunner:
    def __init__(self, engine: Engine, heartbeat_s: float = 10.0) -> None:
        self.runner_id = ids.uuid7()
        self._engine = engine
        self._heartbeat_s = heartbeat_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragline-job")
        self._stopping = threading.Event()
        self._in_flight: set[str] = set()  # queued in the pool or running here: the jobs to mark alive
        self._lock = threading.Lock()
        self._beat = threading.Thread(target=self._beats, name="ragline-job-heartbeat", daemon=True)

    def start(self) -> None:
        """Fail the jobs of runners that stopped beating, then keep beating (and checking)."""
        self._fail_interrupted()
        self._beat.start()

    def submit(self, tenant: str, kind: str, work: Callable[[], dict[str, Any]]) -> Job:
        now, job_id = datetime.now(UTC), ids.uuid7()
        row: dict[str, Any] = {"job_id": job_id, "tenant": tenant, "kind": kind, "status": "queued",
               "runner_id": self.runner_id, "created_at": now, "heartbeat_at": now, "progress": {}}
        with self._store("recording a job") as conn:
            conn.execute(insert(jobs), [row])
        with self._lock:
            self._in_flight.add(job_id)
        self._pool.submit(self._run, job_id, work)
        return Job(job_id, tenant, kind, "queued", now, None, {}, None, None)

    def get(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job; another tenant's is, to this one, a job that does not exist."""
        query = select(jobs).where(jobs.c.job_id == job_id, jobs.c.tenant == tenant)
        with self._store(f"reading job {job_id}") as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return Job(row["job_id"], row["tenant"], row["kind"], row["status"], _utc(row["created_at"]),
                   _utc(row["finished_at"]) if row["finished_at"] else None, row["progress"], row["result"],
                   row["error"])

    def close(self) -> None:
        """Finish the running job; jobs still queued are failed as interrupted (their bytes go)."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            with self._store("failing queued jobs at shutdown") as conn:
                conn.execute(update(jobs).where(jobs.c.runner_id == self.runner_id, jobs.c.status == "queued")
                             .values(status="failed", error=INTERRUPTED, finished_at=datetime.now(UTC)))
        except JobStoreError as exc:  # the next start fails them instead
            log.warning("%s", exc)
        if self._beat.is_alive():
            self._beat.join(timeout=self._heartbeat_s + 5)

    def _run(self, job_id: str, work: Callable[[], dict[str, Any]]) -> None:
        try:
            self._run_job(job_id, work)
        except JobStoreError as exc:  # no longer marked alive: failed as interrupted after STALE_BEATS
            log.warning("%s", exc)
        finally:
            with self._lock:
                self._in_flight.discard(job_id)

    def _run_job(self, job_id: str, work: Callable[[], dict[str, Any]]) -> None:
        mine = (jobs.c.job_id == job_id, jobs.c.runner_id == self.runner_id)
        now = datetime.now(UTC)
        with self._store(f"starting job {job_id}") as conn:
            started = conn.execute(update(jobs).where(*mine, jobs.c.status == "queued")
                                   .values(status="running", started_at=now, heartbeat_at=now)).rowcount
        if not started:
            return  # failed as interrupted meanwhile: the client was told to re-submit
        values: dict[str, Any]
        try:
            values = {"status": "succeeded", "result": work()}
        except JobFailed as exc:
            values = {"status": "failed", "error": exc.error, "result": exc.result}
        except Exception as exc:  # noqa: BLE001 - a job's failure is reported, not raised
            values = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._store(f"finishing job {job_id}") as conn:
            conn.execute(update(jobs).where(*mine, jobs.c.status == "running")
                         .values(finished_at=datetime.now(UTC), **values))

    def _beats(self) -> None:
        while not self._stopping.wait(self._heartbeat_s):
            with self._lock:
                alive = sorted(self._in_flight)
            try:
                if alive:
                    with self._store("marking jobs alive") as conn:
                        conn.execute(update(jobs).where(jobs.c.job_id.in_(alive), jobs.c.status.in_(_UNFINISHED))
                                     .values(heartbeat_at=datetime.now(UTC)))
                self._fail_interrupted()
            except JobStoreError as exc:  # the database is away: try again at the next beat
                log.warning("%s", exc)

    def _fail_interrupted(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=STALE_BEATS * self._heartbeat_s)
        with self._store("failing interrupted jobs") as conn:
            failed = conn.execute(
                update(jobs).where(jobs.c.status.in_(_UNFINISHED), jobs.c.heartbeat_at < cutoff)
                .values(status="failed", error=INTERRUPTED, finished_at=datetime.now(UTC))).rowcount
        if failed:
            log.warning("%d background jobs of a stopped server failed as interrupted", failed)
        return int(failed)

    @contextmanager
    def _store(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            first_line = (str(orig).strip().splitlines() or [""])[0][:300]
            raise JobStoreError(f"{doing}: {type(orig).__name__}: {first_line}") from exc


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
