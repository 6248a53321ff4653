"""The extraction sandbox's cost per file: a warm worker against the same parser in process.

Run: ``python bench/sandbox.py [--files 40] [--rounds 3]`` (about a minute on 2 busy cores).

For each file (small web pages and PDFs of the shared corpus, and the largest PDF), the
same parse is timed in this process and through one warm worker of the pool, alternating,
``--rounds`` times; each side keeps its best time. The overhead of the sandbox is the
difference: the request and the file's bytes down a pipe, the result back in frames,
unpickled by the restricted unpickler, the memory cap set and lifted. Goal: under 30 ms
per file above the parser's own time. Also printed: how long a worker takes to start and
import its parsers (paid once per worker, and again only when one is replaced), and what
one fork of a fresh child cost before (the old sandbox, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = Path(os.environ.get("RAGLINE_CORPORA", ROOT.parent / "shared" / "corpora"))


def files(n: int) -> list[Path]:
    rows = [json.loads(line) for line in (CORPORA / "pdf" / "manifest.jsonl").open()]
    pdfs = [CORPORA / "pdf" / r["file"] for r in sorted(rows, key=lambda r: r["file"])
            if not r.get("encrypted") and r.get("pages", 99) <= 20 and "scanned" not in " ".join(r.get("tags", []))]
    html = sorted((CORPORA / "html-main-content" / "pages").glob("*.html"))
    return html[: n // 2] + pdfs[: n - n // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from ingest.extract import detect
    from ingest.extract.registry import _extract_with, _media_type_table
    from ingest.extract.sandbox import PoolConfig, SandboxLimits, SandboxPool

    pool = SandboxPool(PoolConfig(workers=1))
    limits = SandboxLimits(timeout_s=120, memory_mb=1024)
    started = time.perf_counter()
    pool.run(_extract_with, limits, "warm-up", "text", b"hello", "warm-up.txt", None, 10)
    start_s = time.perf_counter() - started

    rows = []
    for path in files(args.files):
        data = path.read_bytes()
        name = _media_type_table()[detect.detect_media_type(data, str(path))]
        call = (name, data, str(path), None, 2000)
        inproc, sandboxed = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            _extract_with(*call)
            inproc.append(time.perf_counter() - t)
            t = time.perf_counter()
            pool.run(_extract_with, limits, str(path), *call)
            sandboxed.append(time.perf_counter() - t)
        rows.append((path.name, name, len(data), min(inproc), min(sandboxed)))
    pool.close()

    print(f"\n{'file':<48} {'kind':<5} {'KB':>6} {'in process':>11} {'sandboxed':>10} {'overhead':>9}")
    for file, kind, size, a, b in rows:
        print(f"{file[:48]:<48} {kind:<5} {size / 1024:>6.0f} {a * 1000:>9.1f}ms {b * 1000:>8.1f}ms "
              f"{(b - a) * 1000:>+7.1f}ms")
    overheads = [(b - a) * 1000 for *_, a, b in rows]
    print(f"\nper-file overhead of the warm sandbox over {len(rows)} files (best of {args.rounds} each): "
          f"median {statistics.median(overheads):+.1f} ms, max {max(overheads):+.1f} ms (goal: under 30 ms)")
    print(f"a worker's start (interpreter + parsers imported), paid once per worker: {start_s:.2f} s")
    print(f"pool: {pool.stats}")
    print(f"command: python bench/sandbox.py --files {args.files} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
