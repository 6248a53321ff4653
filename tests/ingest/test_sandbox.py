"""The extraction sandbox: warm workers reused across files, still isolated (time and
memory limits, crashes), replaced when they break a limit or wear out, and a boundary
where what a worker hands back is checked before the parent trusts it."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.extract.sandbox import PoolConfig, SandboxLimits, SandboxPool, run_sandboxed
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError, LimitExceededError

LIMITS = SandboxLimits(timeout_s=20, memory_mb=256)


# --- what the workers run (imported by them by name) ---------------------------------------------


def returns_a_document(text: str) -> ExtractedDocument:
    return ExtractedDocument("mem://doc", "text/plain", text, (Section(0, len(text)),), {"title": "t"})


def returns_its_pid() -> ExtractedDocument:
    return ExtractedDocument("mem://pid", "text/plain", "pid", (Section(0, 3),), {"pid": os.getpid()})


def returns_something_else() -> object:
    return collections.OrderedDict(a=1)  # stands in for any object a subverted parser might smuggle


def fails_like_a_bad_file() -> ExtractedDocument:
    raise ExtractionError("mem://bad", "not a PDF")


def sleeps(seconds: float) -> ExtractedDocument:
    time.sleep(seconds)
    return returns_its_pid()


def allocates(mb: int) -> ExtractedDocument:
    hoard = bytearray(mb * 1024 * 1024)
    return returns_a_document(str(len(hoard)))


def segfaults() -> ExtractedDocument:
    os.kill(os.getpid(), signal.SIGSEGV)
    return returns_its_pid()


def large_document(chars: int, sections: int) -> ExtractedDocument:
    text = "x" * chars
    step = chars // sections
    return ExtractedDocument("mem://large", "text/plain", text,
                             tuple(Section(i * step, (i + 1) * step, heading_path=(f"h{i}",)) for i in range(sections)))


def meets_another(folder: str) -> ExtractedDocument:
    """Waits until two files are being parsed at once (each leaves its pid in ``folder``)."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 15
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return ExtractedDocument("mem://meet", "text/plain", "met", (Section(0, 3),), {"met": len(os.listdir(folder))})


# --- tests ---------------------------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[SandboxPool]:
    """Two workers that import no parsers (these tests parse nothing), so they start in ~50 ms."""
    p = SandboxPool(PoolConfig(workers=2, recycle_after=50, eager=(), idle=()))
    yield p
    p.close()


def pid(pool: SandboxPool) -> int:
    return int(pool.run(returns_its_pid, LIMITS, "mem://pid").metadata["pid"])


def test_a_parse_result_crosses_the_boundary() -> None:
    doc = run_sandboxed(returns_a_document, LIMITS, "mem://doc", "hello")
    assert doc.text == "hello" and doc.sections == (Section(0, 5),) and doc.metadata == {"title": "t"}


def test_an_object_that_is_no_parse_result_is_refused() -> None:
    with pytest.raises(ExtractionError, match="collections.OrderedDict, which is not a parse result"):
        run_sandboxed(returns_something_else, LIMITS, "mem://x")


def test_a_worker_is_reused_across_files_and_a_bad_file_does_not_cost_it(pool: SandboxPool) -> None:
    first = pid(pool)
    with pytest.raises(ExtractionError, match="not a PDF"):
        pool.run(fails_like_a_bad_file, LIMITS, "mem://bad")
    assert {pid(pool) for _ in range(5)} <= {first} | set(_other_worker(pool, first))
    assert pool.stats.started <= 2 and pool.stats.killed == 0 and pool.stats.files == 7
    assert first != os.getpid()


def _other_worker(pool: SandboxPool, first: int) -> list[int]:
    return [w._proc.pid for w in pool._idle if w._proc.pid != first]


def test_two_files_are_parsed_at_once_in_two_workers(pool: SandboxPool, tmp_path: Path) -> None:
    results: list[ExtractedDocument] = []
    threads = [threading.Thread(target=lambda: results.append(pool.run(meets_another, LIMITS, "m", str(tmp_path))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [d.metadata["met"] for d in results] == [2, 2]
    assert len(os.listdir(tmp_path)) == 2  # two worker processes


def test_a_file_past_its_time_limit_is_stopped_and_its_worker_replaced(pool: SandboxPool) -> None:
    with pytest.raises(LimitExceededError, match="longer than 0.5 s"):
        pool.run(sleeps, SandboxLimits(timeout_s=0.5, memory_mb=256), "mem://slow", 30.0)
    assert pool.stats.killed == 1
    assert pid(pool) > 0  # the pool carries on, with a replacement


def test_a_file_past_its_memory_cap_is_stopped_and_the_next_file_parses(pool: SandboxPool) -> None:
    with pytest.raises(LimitExceededError, match="more than 64 MB"):
        pool.run(allocates, SandboxLimits(timeout_s=20, memory_mb=64), "mem://bomb", 512)
    doc = pool.run(allocates, SandboxLimits(timeout_s=20, memory_mb=64), "mem://fine", 16)
    assert doc.text == str(16 * 1024 * 1024)


def test_a_crashed_worker_is_reported_and_replaced(pool: SandboxPool) -> None:
    with pytest.raises(ExtractionError, match="parser crashed \\(SIGSEGV"):
        pool.run(segfaults, LIMITS, "mem://crash")
    assert pid(pool) > 0 and pool.stats.killed == 1


def test_a_result_larger_than_its_memory_cap_allows_twice_streams_back_in_pieces(pool: SandboxPool) -> None:
    # 80 MB of text under a 128 MB cap: one pickle of it (a second copy of 80 MB) would not
    # fit beside the text; pieces of 1 M characters do. 20,000 sections cross in batches.
    doc = pool.run(large_document, SandboxLimits(timeout_s=60, memory_mb=128), "mem://large", 80_000_000, 20_000)
    assert len(doc.text) == 80_000_000 and len(doc.sections) == 20_000
    assert doc.sections[-1] == Section(79_996_000, 80_000_000, heading_path=("h19999",))


def test_a_worker_is_recycled_after_its_quota_of_files() -> None:
    pool = SandboxPool(PoolConfig(workers=1, recycle_after=3, eager=(), idle=()))
    try:
        pids = [pid(pool) for _ in range(7)]
    finally:
        pool.close()
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
    assert pool.stats.recycled == 2 and pool.stats.killed == 0


def test_closing_the_pool_stops_its_workers(pool: SandboxPool) -> None:
    worker = pid(pool)
    pool.close()
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(worker)
    with pytest.raises(ExtractionError, match="closed"):
        pid(pool)


def _alive(process: int) -> bool:
    try:
        status = Path(f"/proc/{process}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
