"""Embedding across documents: the texts of every document in flight share requests.

The ingest pipeline prepares several documents at once (extraction in the sandbox pool,
chunking beside it) and hands each one's :class:`~ingest.embed.client.EmbeddingPlan` to
one batcher. Its runner threads (``max_in_flight`` of them: one for the local model,
which already uses every core) keep taking the next request's worth of pieces from
everything pending, so small documents fill one request together and the model never
waits for one document to be chunked.

Token-aware: a request is cut from the pending pieces sorted by token count, around the
oldest piece (so every document finishes, in about the order it arrived), which keeps a
request's pieces of similar length: padding to the longest piece wastes little of the
model's time. A text pending for one document is embedded once for all that wait for it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ingest.embed.client import EmbeddingClient, EmbeddingPlan, unit

#: Called once per plan: the fresh vectors of its misses, or the error that failed them.
Done = Callable[[dict[str, np.ndarray] | None, BaseException | None], None]


@dataclass
class _Job:
    done: Done
    waiting: set[str]
    fresh: dict[str, np.ndarray] = field(default_factory=dict)
    finished: bool = False

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.finished = True
            self.done(None if error else self.fresh, error)


@dataclass
class _Entry:
    """One distinct text being embedded: its pieces left, their sum, the jobs waiting for it."""

    key: str
    left: int
    jobs: list[_Job]
    total: np.ndarray | None = None


@dataclass
class _Piece:
    arrival: int
    entry: _Entry
    text: str
    tokens: int


class EmbeddingBatcher:
    def __init__(self, client: EmbeddingClient, runners: int | None = None) -> None:
        self._client = client
        self._max_texts = min(client.config.max_batch_texts, client.embedder.max_batch)
        self._max_tokens = client.config.max_batch_tokens
        self._cond = threading.Condition()
        self._pending: list[_Piece] = []  # in arrival order
        self._entries: dict[str, _Entry] = {}
        self._arrivals = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"ragline-embed-{i}", daemon=True)
                         for i in range(runners or client.config.max_in_flight)]
        for thread in self._threads:
            thread.start()

    def submit(self, plan: EmbeddingPlan, done: Done) -> None:
        """Embed the plan's misses; ``done`` is called (from a runner, or here if nothing is
        missing) with their vectors, unit length, keyed by text hash. It runs under the
        batcher's lock: it must only hand the result over (set an event), never block."""
        job = _Job(done, set(plan.misses))
        if not job.waiting:
            job.finish()
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedding batcher is closed")
            for key, pieces in plan.misses.items():
                entry = self._entries.get(key)
                if entry is not None:  # another document is waiting for the same text
                    entry.jobs.append(job)
                    continue
                entry = self._entries[key] = _Entry(key, len(pieces), [job])
                self._pending.extend(_Piece(next(self._arrivals), entry, text, n) for text, n in pieces)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop after the requests in flight; pending pieces are dropped (their jobs never finish)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> EmbeddingBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch = self._take()
            try:
                vectors = self._client.call([(p.entry.key, p.text, p.tokens) for p in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every document waiting for these texts
                self._fail(batch, exc)
            else:
                self._deliver(batch, vectors)

    def _take(self) -> list[_Piece]:
        """The next request: pieces of similar length around the oldest one pending."""
        pending = self._pending
        if len(pending) <= self._max_texts and sum(p.tokens for p in pending) <= self._max_tokens:
            self._pending = []
            return pending
        order = sorted(range(len(pending)), key=lambda i: pending[i].tokens)
        at = order.index(0)  # pending[0] is the oldest
        lo = max(0, min(at - self._max_texts // 2, len(order) - self._max_texts))
        window = order[lo:lo + self._max_texts]
        while len(window) > 1 and sum(pending[i].tokens for i in window) > self._max_tokens:
            # Drop the piece farthest (in length) from the oldest one.
            window.remove(window[0] if at - window[0] > window[-1] - at else window[-1])
        chosen = set(window)
        self._pending = [p for i, p in enumerate(pending) if i not in chosen]
        return [pending[i] for i in sorted(window, key=lambda i: pending[i].tokens)]

    def _deliver(self, batch: list[_Piece], vectors: list[list[float]]) -> None:
        with self._cond:
            for piece, vector in zip(batch, vectors, strict=True):
                entry = piece.entry
                as_array = np.asarray(vector, dtype=np.float32)
                entry.total = as_array if entry.total is None else entry.total + as_array
                entry.left -= 1
                if entry.left:
                    continue
                del self._entries[entry.key]
                vector_unit = unit(entry.total)
                for job in entry.jobs:
                    job.fresh[entry.key] = vector_unit
                    job.waiting.discard(entry.key)
                    if not job.waiting:
                        job.finish()

    def _fail(self, batch: list[_Piece], error: BaseException) -> None:
        with self._cond:
            failed = {id(p.entry): p.entry for p in batch}
            jobs = {id(j): j for e in failed.values() for j in e.jobs}
            for entry in failed.values():
                self._entries.pop(entry.key, None)
            # The other texts of the failed documents are no longer needed by them.
            for entry in list(self._entries.values()):
                entry.jobs = [j for j in entry.jobs if id(j) not in jobs]
                if not entry.jobs:
                    del self._entries[entry.key]
            self._pending = [p for p in self._pending if self._entries.get(p.entry.key) is p.entry]
            for job in jobs.values():
                job.finish(error)
