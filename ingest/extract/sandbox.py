"""Parse untrusted files in a child process with a wall-clock timeout and a memory cap.

A hostile file (deep nesting, xref loops, XML or zip bombs) must yield a per-file error,
never hang or exhaust the ingesting process. Python cannot interrupt a C-level parse
or bound one call's memory from inside the process, so each parse runs in a child
forked from a ``forkserver`` (clean of the parent's threads, with the extractor
modules preloaded so a fork costs milliseconds), with ``RLIMIT_AS`` raised only by the
allowed budget above what the child already maps. Recursion limits and stack
overflows kill only the child; the parent reports the cause.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.documents import ExtractedDocument
from schemas.errors import ExtractionError, LimitExceededError

# Imported once by the forkserver so that no child pays for them (~150 ms for
# pdfplumber, ~250 ms for trafilatura). "__main__" too: every child re-runs the main
# script (e.g. the ``ragline`` console script, which imports the whole CLI), and that is
# only cheap when its imports are already loaded. A module that is missing (an extra
# not installed) is skipped by the forkserver.
_PRELOAD = ["__main__", "ingest.extract.registry", "ingest.extract.pdf", "ingest.extract.html",
            "ingest.extract.office", "ingest.extract.email"]


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 20.0
    memory_mb: int = 1024


def run_sandboxed(
    fn: Callable[..., ExtractedDocument], limits: SandboxLimits, source_uri: str, *args: Any
) -> ExtractedDocument:
    """Run ``fn(*args)`` in a sandboxed child and return its result or raise its error."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(sender, fn, limits.memory_mb, args), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.timeout_s):
            raise LimitExceededError(source_uri, f"parsing took longer than {limits.timeout_s:g} s; stopped")
        try:
            raw = receiver.recv_bytes(limits.memory_mb * 1024 * 1024)
        except OSError as exc:
            if "bad message length" in str(exc):
                raise LimitExceededError(
                    source_uri, f"the parsed result exceeds {limits.memory_mb} MB; stopped") from None
            child.join(2)
            raise ExtractionError(source_uri, _death_reason(child.exitcode, limits)) from None
        except EOFError:
            child.join(2)
            raise ExtractionError(source_uri, _death_reason(child.exitcode, limits)) from None
        try:
            status, payload = _ResultUnpickler(io.BytesIO(raw)).load()
        except (pickle.UnpicklingError, ExtractionError, ValueError, TypeError) as exc:
            raise ExtractionError(source_uri, f"unreadable parser result: {exc}") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if status == "ok":
        return payload  # type: ignore[no-any-return]
    if status == "memory":
        raise LimitExceededError(source_uri, f"parsing needed more than {limits.memory_mb} MB; stopped")
    if status == "error" and isinstance(payload, ExtractionError):
        raise payload
    raise ExtractionError(source_uri, str(payload))


class _ResultUnpickler(pickle.Unpickler):
    """Loads only what a parse returns. The child parsed hostile bytes: if a parser bug
    ever let a file take it over, an unrestricted unpickle would hand that control to
    the parent."""

    _ALLOWED = {("schemas.documents", "ExtractedDocument"), ("schemas.documents", "Section"),
                ("schemas.errors", "ExtractionError"), ("schemas.errors", "LimitExceededError"),
                ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
                ("datetime", "timedelta"), ("datetime", "timezone"),
                ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"the parser returned a {module}.{name}, which is not a parse result")
        return super().find_class(module, name)


def _child_main(conn: multiprocessing.connection.Connection, fn: Callable[..., ExtractedDocument],
                memory_mb: int, args: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Everything inherited from the forkserver lives as long as this short child: keep
    # the collector from walking it (a full collection over the preloaded parsers cost
    # a one-page PDF ~50 ms, and touching every object copies its memory page).
    gc.freeze()
    _limit_memory(memory_mb)
    try:
        result: tuple[str, Any] = ("ok", fn(*args))
    except ExtractionError as exc:
        result = ("error", exc)
    except MemoryError:
        result = ("memory", None)
    except RecursionError:
        result = ("crash", "document nesting is too deep to parse (recursion limit)")
    except Exception as exc:  # noqa: BLE001 - any parser bug becomes a per-file error
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
        result = ("crash", f"parser failed: {type(exc).__name__}: {exc}{where}"[:500])
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable library exception
        conn.send(("crash", f"parser failed: {type(exc).__name__}: {exc}"[:500]))
    conn.close()


def _limit_memory(memory_mb: int) -> None:
    current = _vm_size_bytes()
    limit = current + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _death_reason(exitcode: int | None, limits: SandboxLimits) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGSEGV:
            return f"parser crashed ({name}: nesting too deep or memory limit of {limits.memory_mb} MB)"
        return f"parser was killed ({name})"
    return f"parser exited unexpectedly (exit code {exitcode})"
