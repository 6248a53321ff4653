"""One renderer for the CLI: rich on a terminal, a single JSON document with ``--json``.

Errors always go to stderr, so ``--json`` stdout stays machine-readable.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

stderr = Console(stderr=True)
stdout = Console()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[("" if v is None else str(v)) for v in r])
    stdout.print(t)


class Progress:
    """A run's count, rate and time left: a bar on a terminal; elsewhere (a log, a pipe) a
    line on stderr every ``interval_s`` seconds, so a logged run is never silent for long,
    even while one slow document holds it up."""

    def __init__(self, description: str, total: int | None, interval_s: float) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.last = ""
        self._started = time.monotonic()
        self._interval = interval_s
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def advance(self, last: str = "") -> None:
        """One more document done (``last``: what to show of it, e.g. its file name)."""
        self.done += 1
        self.last = last
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, rate=self.rate(), last=last)

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self._started, 1e-6)

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        parts = [f"{self.description} {self.done}/{self.total if self.total is not None else '?'}"]
        if self.total:
            parts[0] += f" ({100 * self.done // self.total}%)"
        parts.append(f"{self.rate():.1f} docs/s")
        parts.append(f"{_clock(elapsed)} elapsed")
        if self.total and self.done:
            parts.append(f"~{_clock((self.total - self.done) / self.rate())} left")
        if self.last:
            parts.append(f"last: {self.last}")
        return " · ".join(parts)

    def _start(self) -> None:
        if stderr.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]:.1f} docs/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                       TextColumn("{task.fields[last]}"))
            self._bar = RichProgress(*columns, console=stderr, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, rate=0.0, last="")
            return
        self._ticker = threading.Thread(target=self._tick, name="ragline-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            sys.stderr.write(self.line() + "\n")
            sys.stderr.flush()

    def _finish(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.stop()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@contextmanager
def progress(description: str, enabled: bool, total: int | None = None,
             interval_s: float = 5.0) -> Iterator[Progress | None]:
    """Progress on stderr (not with --json): a bar with the count, total, rate and time left on
    a terminal, else a line every ``interval_s`` seconds (the first after ``interval_s``)."""
    if not enabled:
        yield None
        return
    shown = Progress(description, total, interval_s)
    shown._start()
    try:
        yield shown
    finally:
        shown._finish()
