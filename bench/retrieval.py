"""Retrieval quality on BEIR SciFact: ``ragline eval`` per mode beside published reference points.

Run: ``python bench/retrieval.py [--data ../shared/corpora/retrieval/scifact] [--home DIR]``.

SciFact (5,183 abstracts, 300 test queries) is CC BY-NC: it is read where it lies and never
copied into this repository. The throwaway home (chunks, embeddings cache, Qdrant Edge
index) is kept under ``--home`` (default ``~/.cache/ragline/bench/scifact``) so a rerun with
the same pipeline embeds nothing; a changed pipeline (chunker, contextual headers, sparse
tokenizer) is a new index generation in the same home, and its chunks are embedded once.
The first run embeds ~7,500 chunks with the offline MiniLM model: 10-20 minutes on 2 cores.

Documents are ranked by their best chunk (``group_by`` document), 100 per query. It
prints the table, ragline's figures before hybrid search and the published ones, and the
queries whose top 10 showed one passage twice (should be 0). No assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.evaluation import METRICS, run_eval  # noqa: E402
from services.settings import Settings  # noqa: E402

REFERENCES = [  # (what, nDCG@10)
    ("BM25, BEIR paper (Thakur et al. 2021)", 0.665),
    ("BM25, Lucene settings (issue 12)", 0.679),
    ("all-MiniLM-L6-v2, whole documents (published, ~)", 0.645),
    ("ragline dense before hybrid (issue 12, k=300)", 0.664),
    ("RRF of ragline dense + BM25, offline (issue 12)", 0.722),
]
GOAL = 0.72


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragline" / "bench" / "scifact"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "corpora" / "retrieval" / "scifact")
    parser.add_argument("--home", type=Path, default=cache)
    parser.add_argument("--mode", action="append", help="dense, sparse, hybrid, hybrid+rerank (default: all)")
    args = parser.parse_args()

    started = time.perf_counter()
    done = {"documents": 0, "queries": 0}

    def tick(kind: str) -> None:
        done[kind] += 1
        if done[kind] % 500 == 0:
            print(f"  {kind}: {done[kind]} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    report = run_eval(Settings(), args.data, home=args.home, modes=tuple(args.mode or ()),
                      on_document=lambda: tick("documents"), on_query=lambda: tick("queries"))
    elapsed = time.perf_counter() - started
    print(f"\nSciFact test: {report.queries} queries, {report.documents} documents, collection {report.collection} "
          f"({elapsed:.0f} s incl. ingest)\n")
    print(f"{'mode':<16}" + "".join(f"{m:>12}" for m in METRICS) + f"{'p50 ms':>10}")
    for mode, scores in report.modes.items():
        print(f"{mode:<16}" + "".join(f"{scores[m]:>12.4f}" for m in METRICS)
              + f"{report.retrieve_ms_p50[mode]:>10.1f}")
    print("\nreference points (nDCG@10):")
    for what, value in REFERENCES:
        print(f"  {value:.3f}  {what}")
    hybrid = report.modes.get("hybrid", {}).get("ndcg@10")
    if hybrid is not None:
        verdict = "met" if hybrid >= GOAL else "NOT met"
        print(f"\ngoal hybrid >= {GOAL}: {verdict} ({hybrid:.4f})")
    print(f"top-10 lists with one passage twice: {report.duplicate_top10}")


if __name__ == "__main__":
    main()
