"""Streaming ingestion: documents/s through one ``ragline worker`` against ``ragline ingest``
of the same documents, in the same run, with the same model, each on a fresh home.

Run: ``python bench/ingest_worker.py [--docs 300] [--pdfs 6] [--repeat 2] [--bootstrap HOST:PORT]``
(also a section of ``bench/kafka.py``: ``--worker-docs N``). Without ``--bootstrap`` a
broker is started with ``deploy/dev/kafka.sh`` (state in a temporary directory, deleted).

The corpus: ``--docs`` small text documents written here, the code files and HTML pages
of ``tests/corpora`` and the first ``--pdfs`` PDFs there (sandboxed extraction).

1. ``ragline ingest CORPUS --json`` on home A: documents / the run's ``elapsed_s``
   (from the first document to the last; the model's load is not in it).
2. ``ragline produce CORPUS`` onto a fresh topic, then ``ragline worker --until-idle 3``
   on home B: documents / (last commit - first record read), the same span.
3. Wall-clock of each command (model load and, for the worker, joining the group and the
   idle tail included) is printed beside, and the ratio worker / ingest; goal >= 0.9.
   ``--repeat`` rounds alternate the order (ingest first, then worker first) on fresh
   homes and the best rate of each is compared: the machine may be shared.

No timed assertions; it prints figures, the commands and a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = ROOT / "deploy" / "dev" / "kafka.sh"
RAGLINE = str(Path(sys.executable).with_name("ragline"))
CORPORA = ROOT / "tests" / "corpora"
GOAL_RATIO = 0.9
WORDS = ["alpha", "beta", "gamma", "delta", "kafka", "worker", "index", "lineage", "vector", "chunk", "tenant",
         "embedding", "query", "answer", "river", "mountain", "ocean", "forest", "city", "library", "harbour"]


def write_corpus(folder: Path, docs: int, pdfs: int) -> int:
    """Synthetic text documents (a few paragraphs each) plus real files; returns the count."""
    folder.mkdir(parents=True)
    for i in range(docs):
        rnd = random.Random(i)
        paragraphs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(40, 120))) + "." for _ in range(4)]
        (folder / f"doc{i:04d}.txt").write_text(f"Document {i}\n\n" + "\n\n".join(paragraphs) + "\n")
    real = sorted((CORPORA / "code" / "files").rglob("*.*")) + sorted((CORPORA / "html-main-content" / "pages")
                                                                     .glob("*.htm*"))
    real += sorted((CORPORA / "pdf" / "files").glob("*.pdf"))[:pdfs]
    for path in real:
        shutil.copy(path, folder / f"real-{path.name}")
    return docs + len(real)


def ragline(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run([RAGLINE, *args], env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"ragline {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def compare(bootstrap: str, docs: int = 300, pdfs: int = 6, repeat: int = 1) -> dict[str, float]:
    """``repeat`` rounds over one corpus, the order alternating (ingest first, then worker
    first), each run on a fresh home; prints every round and returns the best rates."""
    with tempfile.TemporaryDirectory(prefix="ragline-bench-worker-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        count = write_corpus(corpus, docs, pdfs)
        print(f"corpus  {count} documents ({docs} synthetic text, {count - docs} from tests/corpora: code, HTML, "
              f"{pdfs} PDFs); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        best = {"ingest": 0.0, "worker": 0.0}
        for round_ in range(repeat):
            runs = [_ingest, _worker] if round_ % 2 == 0 else [_worker, _ingest]
            for runner in runs:
                name, rate = runner(bootstrap, corpus, work / f"round{round_}")
                best[name] = max(best[name], rate)
        ratio = best["worker"] / best["ingest"]
        print(f"ratio   worker / ingest (best of {repeat}): {best['worker']:.2f} / {best['ingest']:.2f} documents/s = "
              f"{ratio:.2f}  {'PASS' if ratio >= GOAL_RATIO else 'MISS'} (goal >= {GOAL_RATIO})")
        return {"ingest_rate": best["ingest"], "worker_rate": best["worker"], "ratio": ratio}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}


def _ingest(bootstrap: str, corpus: Path, work: Path) -> tuple[str, float]:
    ingested, wall = ragline(_clean_env() | {"RAGLINE_HOME": str(work / "home-ingest")}, "ingest", str(corpus),
                             "--json")
    indexed = sum(ingested["documents"].values())
    rate = indexed / ingested["elapsed_s"]
    print(f"ingest  `ragline ingest CORPUS --json`: {indexed} documents ({ingested['documents']}) in "
          f"{ingested['elapsed_s']:.1f} s = {rate:.2f} documents/s (wall {wall:.1f} s with start-up)")
    return "ingest", rate


def _worker(bootstrap: str, corpus: Path, work: Path) -> tuple[str, float]:
    run = uuid.uuid4().hex[:8]
    env = _clean_env() | {
        "RAGLINE_HOME": str(work / "home-worker"), "RAGLINE_KAFKA__BOOTSTRAP": bootstrap,
        "RAGLINE_KAFKA__INGEST_TOPIC": f"bench{run}.requests", "RAGLINE_KAFKA__INGEST_DLQ_TOPIC": f"bench{run}.dlq",
        "RAGLINE_KAFKA__WORKER_GROUP": f"bench{run}", "RAGLINE_KAFKA__DOCUMENTS_TOPIC": f"bench{run}.documents",
        "RAGLINE_KAFKA__ANSWERS_TOPIC": f"bench{run}.answers"}
    produced, produce_wall = ragline(env, "produce", str(corpus), "--json")
    worked, wall = ragline(env, "worker", "--until-idle", "3", "--json")
    span = worked["last_commit_at"] - worked["first_record_at"]
    rate = worked["consumed"] / span
    print(f"produce `ragline produce CORPUS --json`: {produced['upserts']} requests in {produce_wall:.1f} s wall")
    print(f"worker  `ragline worker --until-idle 3 --json`: {worked['consumed']} requests ({worked['new']} new, "
          f"{worked['dead_lettered']} dead-lettered, {worked['batches']} batches), first record to last commit "
          f"{span:.1f} s = {rate:.2f} documents/s (wall {wall:.1f} s with start-up, group join, 3 s idle tail)")
    return "worker", rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300, help="synthetic text documents")
    parser.add_argument("--pdfs", type=int, default=6, help="PDFs of tests/corpora to add")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, the order alternating; best of each kept")
    parser.add_argument("--bootstrap", help="a running broker (default: start one with deploy/dev/kafka.sh)")
    args = parser.parse_args()
    print(f"command: python bench/ingest_worker.py {' '.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory(prefix="ragline-bench-worker-broker-") as tmp:
        env = None
        bootstrap = args.bootstrap
        if not bootstrap:
            env = os.environ | {"RAGLINE_KAFKA_STATE": str(Path(tmp) / "kafka")}
            started = subprocess.run([str(KAFKA_SH), "start"], env=env, capture_output=True, text=True, check=True)
            bootstrap = started.stdout.strip().splitlines()[-1].removeprefix("bootstrap=")
        try:
            compare(bootstrap, args.docs, args.pdfs, args.repeat)
        finally:
            if env is not None:
                subprocess.run([str(KAFKA_SH), "stop", "--clean"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
