"""Parse untrusted files in warm, reusable worker processes with a timeout and a memory cap.

A hostile file (deep nesting, xref loops, XML or zip bombs) must yield a per-file error,
never hang or exhaust the ingesting process. Python cannot interrupt a C-level parse or
bound one call's memory from inside the process, so parsing runs in a pool of worker
processes, one per core by default:

- **Warm.** Each worker is a fresh interpreter (``python -P -c …``, started with
  ``subprocess``: no fork of a threaded parent, and no re-import of the parent's
  ``__main__`` such as the whole CLI) that imports the parsers once, when it starts;
  heavier ones (unstructured, for office files) are imported while it waits for work,
  or on its first file of that kind. A file then costs a pipe round trip (measured by
  ``bench/sandbox.py``), not a process start.
- **Isolated.** Each file runs under ``RLIMIT_AS`` set to the worker's address space at
  that moment plus the file's budget (``memory_mb``), with a wall-clock timeout. A worker
  that runs out of time is killed; one that crashes (a stack overflow, a signal) or hits
  its memory cap exits; the parent reports the cause for that file and starts a
  replacement. A worker is also recycled after ``recycle_after`` files, or when its RSS
  has grown ``recycle_growth_mb`` over what it had when it became ready (parsers that
  cache or leak), so one long run cannot accumulate a parser's garbage.
- **Behind the model.** Workers run at ``NICENESS`` 10: on cores the embedding model also
  uses, a parse takes what the model leaves (onnxruntime's threads all wait for the
  slowest one at every step, so one thread held up behind a parse slows the whole batch).
  On a 2-core machine this brought ingest from 1.3-1.7x the model's own time to 1.15-1.5x
  (``bench/ingest.py``, a quarter of the corpus, a machine shared with other work).
- **Bounded results.** A worker never sends one pickle of the whole document (a 137-page
  PDF used to hit the memory cap while pickling its result): it streams the text in
  pieces of at most ``TEXT_PIECE`` characters and the sections in frames, each frame at
  most ``MAX_FRAME`` bytes, and the parent stops reading past ``memory_mb`` of text.
  The parent unpickles each frame with a restricted unpickler that loads only parse
  results (documents, sections, extraction errors, dates): a parser subverted by a file
  cannot hand the parent code.

Workers are shared by every thread of the process (:func:`shared_pool`): the ingest
pipeline keeps one file per worker in flight, the API's upload jobs use the same
workers. They are started on first use; idle, they cost memory only.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import multiprocessing.connection
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError, LimitExceededError

#: Imported by every worker before it takes its first file: the parsers of the common formats.
EAGER_PRELOAD = ("ingest.extract.registry", "ingest.extract.text", "ingest.extract.code", "ingest.extract.pdf",
                 "ingest.extract.html", "ingest.extract.email")
#: Imported (``module:function`` is also called) by an idle worker, one at a time between
#: files; a file that needs one first imports it itself. unstructured and what its first
#: partition of each format loads (spaCy's sentencizer, the format's partitioner, langdetect's
#: profiles) cost
#: ~3 s and ~90 MB once per worker, instead of 3-4 s per office file in a fresh child.
IDLE_PRELOAD = ("ingest.extract.office:_partitioner", "unstructured.nlp.tokenize:_get_nlp",
                "unstructured.partition.docx", "unstructured.partition.pptx", "unstructured.partition.xlsx",
                "unstructured.partition.epub", "unstructured.partition.odt", "unstructured.partition.rtf",
                "unstructured.chunking.dispatch", "langdetect.detector_factory:init_factory",
                "ingest.extract.pdf_repair")

#: How long a worker waits for a file before it spends its time on the next idle preload.
IDLE_AFTER_S = 0.5
#: Characters of text per frame, and the largest frame either side accepts (bytes).
TEXT_PIECE = 1 << 20
MAX_FRAME = 8 << 20
#: Workers parse at a lower CPU priority than the process they serve: on a machine whose
#: cores the embedding model also uses, the model's threads (all of them needed for each
#: step of a batch) are not held up behind a parse; parsing takes what the model leaves.
NICENESS = 10
#: How long a new worker may take to import its parsers (two cold interpreters on a busy machine).
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 20.0
    #: Address space one file may add to its worker (RLIMIT_AS above the worker's size when
    #: the file starts). Also the most text the parent accepts back from one file.
    memory_mb: int = 1024


@dataclass(frozen=True)
class PoolConfig:
    workers: int = 0  # 0: one per core
    recycle_after: int = 200  # files per worker
    recycle_growth_mb: int = 512  # RSS a worker may gain over its ready size before it is replaced
    eager: tuple[str, ...] = EAGER_PRELOAD
    idle: tuple[str, ...] = IDLE_PRELOAD

    @property
    def size(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass
class PoolStats:
    files: int = 0
    started: int = 0  # worker processes started (the first ones and every replacement)
    killed: int = 0  # killed or died on a timeout, crash or memory breach
    recycled: int = 0  # retired after recycle_after files or on RSS growth


class SandboxPool:
    """A pool of warm extraction workers; :meth:`run` is safe to call from many threads at once."""

    def __init__(self, config: PoolConfig = PoolConfig()) -> None:
        self.config = config
        self.stats = PoolStats()
        self._idle: list[_Worker] = []
        self._count = 0  # workers alive (idle, busy or starting)
        self._cond = threading.Condition()
        self._closed = False

    def warm(self) -> None:
        """Start every worker now (they import their parsers in the background)."""
        with self._cond:
            while self._count < self.config.size and not self._closed:
                self._idle.append(self._spawn())

    def run(self, fn: Callable[..., Any], limits: SandboxLimits, source_uri: str, *args: Any) -> ExtractedDocument:
        """``fn(*args)`` in a worker: its document, or its ``ExtractionError``, or one naming
        the limit it broke or how the worker died."""
        worker = self._acquire()
        ran = False
        try:
            worker.ready(source_uri)
            ran = True
            return worker.run(fn, limits, source_uri, args)
        finally:
            self._release(worker, ran)

    def close(self) -> None:
        """Stop the idle workers now, and each busy one when its file is done."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.hang_up()  # all of them first: they exit together
        for worker in idle:
            worker.stop()

    def _spawn(self) -> _Worker:
        self._count += 1
        self.stats.started += 1
        return _Worker(self.config)

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise ExtractionError("sandbox", "the extraction pool is closed")
                if self._idle:
                    return self._idle.pop(0)
                if self._count < self.config.size:
                    return self._spawn()
                self._cond.wait()

    def _release(self, worker: _Worker, ran: bool) -> None:
        lost = not worker.alive  # killed on a limit, died, or sent what it must not
        retire = not lost and worker.worn_out()
        if lost or retire or self._closed:
            worker.stop()
        with self._cond:
            self.stats.files += ran
            self.stats.recycled += retire
            self.stats.killed += lost and ran
            if worker.alive:
                self._idle.append(worker)
            else:
                self._count -= 1
                if not self._closed:  # replace it now: it warms up while the others work
                    self._idle.append(self._spawn())
            self._cond.notify()


# --- one worker, seen from the parent -----------------------------------------------------------


class _Worker:
    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        boot = (f"import sys; sys.path[:0] = {sys.path!r}; "
                f"from ingest.extract.sandbox import worker_main; "
                f"worker_main({to_child_r}, {from_child_w}, {config.eager!r}, {config.idle!r})")
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")  # one parse per core: no thread pools inside a worker
        try:
            # -P: nothing from the working directory shadows a module; a new session: the
            # terminal's Ctrl-C reaches the parent, which stops its workers itself.
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-c", boot], pass_fds=(to_child_r, from_child_w), env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = multiprocessing.connection.Connection(to_child_w, readable=False)
        self._recv = multiprocessing.connection.Connection(from_child_r, writable=False)
        self._ready_rss = 0
        self.rss = 0
        self.files = 0
        self.alive = True
        self._announced = False
        self._in_sync = True  # every frame of the last request read

    def ready(self, source_uri: str) -> None:
        """Wait until the worker has imported its parsers (not counted against a file's timeout)."""
        if self._announced:
            return
        if not self._recv.poll(START_TIMEOUT_S):
            self.stop()
            raise ExtractionError(source_uri, f"no extraction worker started within {START_TIMEOUT_S:g} s")
        try:
            status, rss = _load(self._recv.recv_bytes(MAX_FRAME))
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError):
            self.stop()
            raise ExtractionError(source_uri, "the extraction worker failed to start "
                                              f"({_death_reason(self._proc.poll(), 0)})") from None
        self._ready_rss = self.rss = int(rss)
        self._announced = True

    def worn_out(self) -> bool:
        grown = self.rss - self._ready_rss > self._config.recycle_growth_mb * 1024 * 1024
        return self.files >= self._config.recycle_after or grown

    def run(self, fn: Callable[..., Any], limits: SandboxLimits, source_uri: str,
            args: tuple[Any, ...]) -> ExtractedDocument:
        deadline = time.monotonic() + limits.timeout_s
        try:
            self._send.send_bytes(pickle.dumps((fn, args, limits.memory_mb), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self.stop()
            raise ExtractionError(source_uri, _death_reason(self._proc.poll(), limits.memory_mb)) from None
        self.files += 1
        self._in_sync = False
        try:
            return self._receive(source_uri, limits, deadline)
        finally:
            if not self._in_sync:
                self.stop()  # a worker that broke a limit, died or sent garbage is not reused

    def _receive(self, source_uri: str, limits: SandboxLimits, deadline: float) -> ExtractedDocument:
        head = self._frame(source_uri, limits, deadline)
        if head[0] != "doc":
            self._finish(self._frame(source_uri, limits, deadline))
            raise _failure(head, source_uri, limits)
        _, attrs, text_len, section_count = head
        if not isinstance(attrs, dict) or not isinstance(text_len, int) or not isinstance(section_count, int):
            raise ExtractionError(source_uri, "unreadable parser result: a malformed header")
        if text_len > limits.memory_mb * 1024 * 1024:
            raise LimitExceededError(source_uri, f"the parsed text exceeds {limits.memory_mb} MB; stopped")
        pieces: list[str] = []
        got = 0
        sections: list[Section] = []
        while got < text_len or len(sections) < section_count:
            frame = self._frame(source_uri, limits, deadline)
            kind, value = frame[0], frame[1] if len(frame) > 1 else None
            if kind == "text" and isinstance(value, str) and got + len(value) <= text_len:
                pieces.append(value)
                got += len(value)
            elif (kind == "sections" and isinstance(value, tuple) and len(sections) + len(value) <= section_count
                  and all(type(s) is Section for s in value)):
                sections.extend(value)
            else:  # the worker ran out of memory while sending, or sent what it must not
                raise _failure(frame, source_uri, limits)
        self._finish(self._frame(source_uri, limits, deadline))
        try:
            return ExtractedDocument(text="".join(pieces), sections=tuple(sections), **attrs)
        except TypeError as exc:
            raise ExtractionError(source_uri, f"unreadable parser result: {exc}") from None

    def _finish(self, frame: tuple[Any, ...]) -> None:
        if frame[0] != "end" or not isinstance(frame[1], int) or not isinstance(frame[2], bool):
            raise ExtractionError("sandbox", "unreadable parser result: no end frame")
        self.rss = frame[1]
        self._in_sync = True
        if frame[2]:  # the worker exits after this file (it ran out of memory)
            self.alive = False

    def _frame(self, source_uri: str, limits: SandboxLimits, deadline: float) -> tuple[Any, ...]:
        if not self._recv.poll(max(0.0, deadline - time.monotonic())):
            raise LimitExceededError(source_uri, f"parsing took longer than {limits.timeout_s:g} s; stopped")
        try:
            raw = self._recv.recv_bytes(MAX_FRAME)
        except OSError as exc:
            if "bad message length" in str(exc):
                raise LimitExceededError(
                    source_uri, f"a piece of the parsed result exceeds {MAX_FRAME >> 20} MB; stopped") from None
            raise ExtractionError(source_uri, self._died(limits)) from None
        except EOFError:
            raise ExtractionError(source_uri, self._died(limits)) from None
        try:
            frame = _load(raw)
        except (pickle.UnpicklingError, ExtractionError, ValueError, TypeError, EOFError, AttributeError) as exc:
            raise ExtractionError(source_uri, f"unreadable parser result: {exc}") from None
        if not isinstance(frame, tuple) or not frame or not isinstance(frame[0], str):
            raise ExtractionError(source_uri, "unreadable parser result: not a frame")
        return frame

    def _died(self, limits: SandboxLimits) -> str:
        try:
            code = self._proc.wait(2)
        except subprocess.TimeoutExpired:
            code = None
        return _death_reason(code, limits.memory_mb)

    def hang_up(self) -> None:
        """Close the pipes: an idle worker reads the end of its requests and exits."""
        self.alive = False
        for conn in (self._send, self._recv):
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        """Ask the worker to exit (end of its requests pipe), and kill it if it does not at once."""
        self.hang_up()
        if self._proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0.05)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


def _failure(frame: tuple[Any, ...], source_uri: str, limits: SandboxLimits) -> ExtractionError:
    """The error a frame other than the document's stands for."""
    kind, value = frame[0], frame[1] if len(frame) > 1 else None
    if kind == "error" and isinstance(value, ExtractionError):
        return value
    if kind == "memory":
        return LimitExceededError(source_uri, f"parsing needed more than {limits.memory_mb} MB; stopped")
    if kind == "crash":
        return ExtractionError(source_uri, str(value))
    return ExtractionError(source_uri, f"unreadable parser result: an unexpected {kind!r} frame")


def _load(raw: bytes) -> Any:
    return _ResultUnpickler(io.BytesIO(raw)).load()


class _ResultUnpickler(pickle.Unpickler):
    """Loads only what a parse returns. The worker parsed hostile bytes: if a parser bug
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


def _death_reason(exitcode: int | None, memory_mb: int) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGSEGV:
            return f"parser crashed ({name}: nesting too deep or memory limit of {memory_mb} MB)"
        return f"parser was killed ({name})"
    return f"parser exited unexpectedly (exit code {exitcode})"


# --- the process-wide pool ------------------------------------------------------------------------

_pools: dict[PoolConfig, SandboxPool] = {}
_pools_lock = threading.Lock()


def shared_pool(config: PoolConfig = PoolConfig()) -> SandboxPool:
    """This process's pool for ``config``: extraction workers belong to the process (as its
    cores do), not to one pipeline, so every caller shares them. Closed at exit."""
    with _pools_lock:
        pool = _pools.get(config)
        if pool is None:
            pool = _pools[config] = SandboxPool(config)
        return pool


def close_shared_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _forget_pools_in_child() -> None:
    _pools.clear()  # a forked child does not own its parent's workers


atexit.register(close_shared_pools)
os.register_at_fork(after_in_child=_forget_pools_in_child)


def run_sandboxed(
    fn: Callable[..., object], limits: SandboxLimits, source_uri: str, *args: Any
) -> ExtractedDocument:
    """Run ``fn(*args)`` in a worker of the shared pool and return its result or raise its error."""
    return shared_pool().run(fn, limits, source_uri, *args)


# --- the worker process ---------------------------------------------------------------------------


def worker_main(requests_fd: int, results_fd: int, eager: tuple[str, ...] = EAGER_PRELOAD,
                idle: tuple[str, ...] = IDLE_PRELOAD) -> None:
    """A worker's life: import the parsers, say so, then parse one file per request until
    the requests pipe closes (or a file breaks its memory cap)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(os.getppid())
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    requests = multiprocessing.connection.Connection(requests_fd, writable=False)
    results = multiprocessing.connection.Connection(results_fd, readable=False)
    pending = list(idle)
    for target in eager:
        _preload(target)
    # What the parsers imported lives as long as this worker: keep the collector from
    # walking it on every collection during a parse.
    gc.collect()
    gc.freeze()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    results.send_bytes(pickle.dumps(("ready", _rss())))
    while True:
        if pending and not requests.poll(IDLE_AFTER_S):  # idle, not just between two files
            _preload(pending.pop(0))
            gc.freeze()
            continue
        try:
            fn, args, memory_mb = pickle.loads(requests.recv_bytes())
        except EOFError:
            return
        exit_after = _serve(results, fn, args, memory_mb, hard)
        if exit_after:
            return


def _serve(results: multiprocessing.connection.Connection, fn: Callable[..., Any], args: tuple[Any, ...],
           memory_mb: int, hard: int) -> bool:
    """One file: parse under the memory cap, stream the result. True if the worker must exit."""
    limit = _vm_size_bytes() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    out_of_memory = False
    try:
        try:
            frames: Iterator[tuple[Any, ...]] = _frames(fn(*args))
        except ExtractionError as exc:
            frames = iter([("error", exc)])
        except MemoryError:
            out_of_memory, frames = True, iter([("memory",)])
        except RecursionError:
            frames = iter([("crash", "document nesting is too deep to parse (recursion limit)")])
        except Exception as exc:  # noqa: BLE001 - any parser bug becomes a per-file error
            frames = iter([("crash", _describe_crash(exc))])
        try:
            for frame in frames:
                results.send_bytes(_dump(frame))
        except MemoryError:
            results.send_bytes(_dump(("memory",)))
            out_of_memory = True
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    results.send_bytes(_dump(("end", _rss(), out_of_memory)))
    return out_of_memory


def _frames(result: Any) -> Iterator[tuple[Any, ...]]:
    """A document as bounded frames: a header, the text in pieces, the sections in batches."""
    if type(result) is not ExtractedDocument:
        yield ("value", result)  # anything else is the parent's to refuse
        return
    attrs = {f.name: getattr(result, f.name) for f in fields(ExtractedDocument) if f.name not in ("text", "sections")}
    yield ("doc", attrs, len(result.text), len(result.sections))
    text = result.text
    for start in range(0, len(text), TEXT_PIECE):
        yield ("text", text[start:start + TEXT_PIECE])
    sections = result.sections
    step = 4096
    start = 0
    while start < len(sections):
        batch = sections[start:start + step]
        if len(pickle.dumps(batch)) > MAX_FRAME and step > 1:
            step //= 2
            continue
        yield ("sections", batch)
        start += len(batch)


def _dump(frame: tuple[Any, ...]) -> bytes:
    raw = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    if len(raw) > MAX_FRAME:
        raw = pickle.dumps(("crash", f"a piece of the parse result is larger than {MAX_FRAME >> 20} MB "
                                     f"({frame[0]!r})"))
    return raw


def _describe_crash(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
    return f"parser failed: {type(exc).__name__}: {exc}{where}"[:500]


def _preload(target: str) -> None:
    module_name, _, function = target.partition(":")
    try:
        module = __import__(module_name, fromlist=["_"])
        if function:
            getattr(module, function)()
    except Exception:  # noqa: BLE001 - an extra not installed: the file that needs it says so
        return


def _exit_with_parent(parent: int) -> None:
    """Exit when the parent is gone, even in the middle of a file (a killed parent closes no
    pipe in time to stop a long parse). Not PR_SET_PDEATHSIG: that fires when the parent's
    *thread* that started the worker ends, and pipeline threads come and go."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
