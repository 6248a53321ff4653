"""Ingest throughput and memory: documents/s and peak RSS for a full ingest and for an
unchanged re-ingest of a mixed corpus, at two corpus sizes, with the real offline embedder.

Run: ``python bench/ingest.py [--docs 15] [--scale 4]`` (about 3 minutes on 2 busy cores).

The corpus of size N mixes real files from ``../shared/corpora`` (text-layer PDFs of at
most 20 pages, web pages, source code) with SciFact abstracts written as small ``.txt``
files: N/10 PDFs, N/5 HTML pages, N/20 code files (each capped by what the corpus has),
the rest abstracts. Each size runs in its own fresh process on a fresh temporary
RAGLINE_HOME, so peak RSS is per size. If ingest streams document by document, peak RSS
stays at the model's working set however large the corpus: the growth over that baseline
should stay small and not scale with the corpus size.

Extraction of PDF/HTML runs in sandboxed worker processes; the largest one is reported
apart. Embedding time is measured around the model's ``embed_batch``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = Path(os.environ.get("RAGLINE_CORPORA", ROOT.parent / "shared" / "corpora"))


# --- the corpus -----------------------------------------------------------------------------


def pick_pdfs() -> list[Path]:
    rows = [json.loads(line) for line in (CORPORA / "pdf" / "manifest.jsonl").open()]
    ok = [r for r in rows if not r.get("encrypted") and r.get("pages", 99) <= 20
          and "scanned" not in " ".join(r.get("tags", []))]
    return [CORPORA / "pdf" / r["file"] for r in sorted(ok, key=lambda r: r["file"])]


def build_corpus(n_docs: int, folder: Path) -> dict[str, int]:
    """Write (symlink) a mixed corpus of ``n_docs`` documents into ``folder``."""
    kinds = {
        "pdf": (pick_pdfs(), n_docs // 10),
        "html": (sorted((CORPORA / "html-main-content" / "pages").glob("*.html")), n_docs // 5),
        "code": (sorted(p for p in (CORPORA / "code" / "files").rglob("*") if p.is_file()), n_docs // 20),
    }
    counts: dict[str, int] = {}
    for kind, (files, wanted) in kinds.items():
        (folder / kind).mkdir(parents=True)
        for path in files[:wanted]:
            (folder / kind / path.name).symlink_to(path)
        counts[kind] = min(wanted, len(files))
    abstracts = n_docs - sum(counts.values())
    (folder / "scifact").mkdir()
    with (CORPORA / "retrieval" / "scifact" / "corpus.jsonl").open() as corpus:
        for i, line in zip(range(abstracts), corpus, strict=False):
            row = json.loads(line)
            (folder / "scifact" / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}\n")
            counts["scifact"] = i + 1
    return counts


# --- measuring ------------------------------------------------------------------------------


class PeakRss:
    """Samples RSS every few milliseconds: ``peak`` of this process since the last reset, and
    ``workers``, the largest extraction worker seen (forked by the sandbox's forkserver,
    so it is a grandchild: ``RUSAGE_CHILDREN`` would not see it)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = self.workers = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # exited between listing and reading
                    self.workers = max(self.workers, child.memory_info().rss)
            time.sleep(self._interval)

    def reset(self) -> int:
        self.peak = self._proc.memory_info().rss
        self.workers = 0
        return self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class TimedEmbedder:
    """Delegates to the real model and adds up the time spent inside ``embed_batch``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return self._inner.embed_batch(texts)  # type: ignore[no-any-return]
        finally:
            self.seconds += time.perf_counter() - started


def warm_up(embedder: TimedEmbedder) -> None:
    """One full batch of full-window inputs: onnxruntime keeps that working set (~0.6 GB for
    16 x 256 pieces) for the life of the process, whatever the corpus size. Measuring the
    baseline after it separates the model's fixed cost from anything that grows with the corpus."""
    text = " ".join(f"word{i}" for i in range(embedder.max_input_tokens))
    embedder.embed_batch([text] * embedder.max_batch)
    embedder.seconds = 0.0


def worker(n_docs: int) -> dict[str, Any]:
    """One corpus size in this (fresh) process: build, ingest twice, report."""
    from ingest.sources import SourceOptions, iter_sources
    from services.settings import Settings
    from services.wiring import Components

    sampler = PeakRss()
    with tempfile.TemporaryDirectory(prefix="ragline-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        counts = build_corpus(n_docs, corpus)
        comps = Components(Settings(home=Path(tmp) / "home"))
        timed = TimedEmbedder(comps.embedder)
        comps.__dict__["embedder"] = timed
        comps.pipeline()  # migrate, open the index, load the model and chunkers
        warm_up(timed)
        baseline = sampler.reset()
        result: dict[str, Any] = {"docs": n_docs, "counts": counts, "baseline_rss": baseline}
        for phase in ("full", "unchanged"):
            sampler.reset()
            timed.seconds = 0.0
            pipeline = comps.pipeline()
            started = time.perf_counter()
            summary = pipeline.ingest(iter_sources([str(corpus)], SourceOptions(tenant="bench")))
            elapsed = time.perf_counter() - started
            stats = pipeline.embedder.stats
            result[phase] = {
                "seconds": elapsed, "docs_per_s": sum(summary.documents.values()) / elapsed,
                "documents": summary.documents, "chunks": summary.chunks, "embedded": stats.embedded_texts,
                "requests": stats.requests, "embed_s": timed.seconds, "peak_rss": sampler.peak,
                "workers_rss": sampler.workers,
            }
        comps.close()
    sampler.stop()
    result["lifetime_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


# --- reporting ------------------------------------------------------------------------------


def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def report(results: list[dict[str, Any]]) -> None:
    print(f"\ncorpus: {CORPORA}  ·  cores: {os.cpu_count()}  ·  embedder: all-MiniLM-L6-v2 int8 (onnxruntime, CPU)")
    for r in results:
        mix = ", ".join(f"{v} {k}" for k, v in r["counts"].items())
        print(f"  size {r['docs']}: {mix}")
    header = (f"{'size':>5} {'phase':<10} {'docs':>5} {'failed':>6} {'chunks':>6} {'embedded':>8} {'reqs':>5} "
              f"{'seconds':>8} {'docs/s':>8} {'embed %':>8} {'peak RSS':>9} {'over base':>9}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        for phase in ("full", "unchanged"):
            p = r[phase]
            share = 100 * p["embed_s"] / p["seconds"] if p["seconds"] else 0.0
            print(f"{r['docs']:>5} {phase:<10} {sum(p['documents'].values()):>5} {p['documents']['failed']:>6} "
                  f"{p['chunks']:>6} {p['embedded']:>8} {p['requests']:>5} {p['seconds']:>8.1f} "
                  f"{p['docs_per_s']:>8.1f} {share:>7.0f}% {mb(p['peak_rss']):>9} "
                  f"{mb(p['peak_rss'] - r['baseline_rss']):>9}")
    print("\npeak RSS is this process's (sampled); 'over base' subtracts the baseline: RSS after loading the model,")
    print("opening the index and one warm-up batch of 16 full-window inputs (onnxruntime keeps that working set).")
    print("The allocator keeps freed pages, so a later phase never reports below an earlier peak.")
    for r in results:
        print(f"  size {r['docs']:>5}: baseline {mb(r['baseline_rss'])}, lifetime max (getrusage) "
              f"{mb(r['lifetime_maxrss'])}, largest extraction worker {mb(r['full']['workers_rss'])}")
    if len(results) >= 2:
        small, big = results[0], results[-1]
        size_ratio = big["docs"] / small["docs"]
        chunk_ratio = big["full"]["chunks"] / max(small["full"]["chunks"], 1)
        rss_ratio = big["full"]["peak_rss"] / small["full"]["peak_rss"]
        growth_ratio = (big["full"]["peak_rss"] - big["baseline_rss"]) / max(
            small["full"]["peak_rss"] - small["baseline_rss"], 1)
        print(f"\nmemory bound: corpus {size_ratio:.1f}x documents ({chunk_ratio:.1f}x chunks) -> peak RSS "
              f"{rss_ratio:.2f}x (growth over baseline {growth_ratio:.2f}x)")
        speedup = big["unchanged"]["docs_per_s"] / big["full"]["docs_per_s"]
        print(f"unchanged re-ingest: {big['unchanged']['docs_per_s']:,.0f} docs/s, {speedup:,.0f}x the full ingest, "
              f"{big['unchanged']['requests']} embedding requests")
    full = results[-1]["full"]
    print(f"embedding took {100 * full['embed_s'] / full['seconds']:.0f}% of the full ingest at size "
          f"{results[-1]['docs']}: on CPU the model dominates; extraction, chunking and indexing share the rest.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=15, help="documents in the smaller corpus")
    parser.add_argument("--scale", type=int, default=4, help="the larger corpus is this many times bigger")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    results = []
    for n_docs in (args.docs, args.docs * args.scale):
        print(f"ingesting {n_docs} documents in a fresh process …", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--worker", str(n_docs)], capture_output=True, text=True,
                              check=False)
        if proc.returncode:
            sys.exit(f"worker for {n_docs} documents failed:\n{proc.stderr}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
