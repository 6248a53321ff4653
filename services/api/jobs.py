"""Background ingestion jobs for large uploads (``202 Accepted`` + ``GET /v1/jobs/{id}``).

One worker thread: in the embedded default one process owns the index, and embedding
already uses every core. Jobs live in memory; a restarted server forgets finished jobs
(documents already indexed stay indexed, and re-posting is a no-op by content hash).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import ids


@dataclass
class Job:
    job_id: str
    tenant: str
    kind: str
    status: str = "queued"  # queued | running | succeeded | failed
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "kind": self.kind, "status": self.status, "created_at": self.created_at,
                "finished_at": self.finished_at, "progress": self.progress, "result": self.result,
                "error": self.error}


class JobRunner:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragline-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, tenant: str, kind: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        job = Job(ids.uuid7(), tenant, kind)
        with self._lock:
            self._jobs[job.job_id] = job
        self._pool.submit(self._run, job, work)
        return job

    def get(self, tenant: str, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job and job.tenant == tenant else None

    def _run(self, job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
        job.status = "running"
        try:
            job.result = work(job)
            job.status = "succeeded"
        except Exception as exc:  # noqa: BLE001 - a job's failure is reported, not raised
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        job.finished_at = datetime.now(UTC)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
