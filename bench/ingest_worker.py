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
   homes and the best rate of each is compared: the machine may be shared. Each
   command's CPU time per document is printed too (it barely depends on the load).
4. In one process (``--in-process-rounds``, default 2), sharing the loaded model: the
   same corpus through ``Ingestion.ingest`` and through ``IngestWorker.run`` (first
   record to last commit), alternating, on fresh homes: no start-up in either figure.

No timed assertions; it prints figures, the commands and a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/kafka.py is a sibling: this folder must not shadow the kafka-python package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
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


def ragline(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float, float]:
    """The command's JSON, its wall time and its CPU time (user + system, its children
    included): the CPU time barely depends on what else the machine runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([RAGLINE, *args], env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):
        raise SystemExit(f"ragline {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout.strip().splitlines()[-1]), wall, cpu


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
    ingested, wall, cpu = ragline(_clean_env() | {"RAGLINE_HOME": str(work / "home-ingest")}, "ingest",
                                  str(corpus), "--json")
    indexed = sum(ingested["documents"].values())
    rate = indexed / ingested["elapsed_s"]
    print(f"ingest  `ragline ingest CORPUS --json`: {indexed} documents ({ingested['documents']}) in "
          f"{ingested['elapsed_s']:.1f} s = {rate:.2f} documents/s (wall {wall:.1f} s with start-up; CPU "
          f"{cpu:.1f} s = {1000 * cpu / indexed:.0f} ms/document; load {os.getloadavg()[0]:.1f})")
    return "ingest", rate


def _worker(bootstrap: str, corpus: Path, work: Path) -> tuple[str, float]:
    run = uuid.uuid4().hex[:8]
    env = _clean_env() | {
        "RAGLINE_HOME": str(work / "home-worker"), "RAGLINE_KAFKA__BOOTSTRAP": bootstrap,
        "RAGLINE_KAFKA__INGEST_TOPIC": f"bench{run}.requests", "RAGLINE_KAFKA__INGEST_DLQ_TOPIC": f"bench{run}.dlq",
        "RAGLINE_KAFKA__WORKER_GROUP": f"bench{run}", "RAGLINE_KAFKA__DOCUMENTS_TOPIC": f"bench{run}.documents",
        "RAGLINE_KAFKA__ANSWERS_TOPIC": f"bench{run}.answers"}
    produced, produce_wall, _ = ragline(env, "produce", str(corpus), "--json")
    worked, wall, cpu = ragline(env, "worker", "--until-idle", "3", "--json")
    span = worked["last_commit_at"] - worked["first_record_at"]
    rate = worked["consumed"] / span
    print(f"produce `ragline produce CORPUS --json`: {produced['upserts']} requests in {produce_wall:.1f} s wall")
    print(f"worker  `ragline worker --until-idle 3 --json`: {worked['consumed']} requests ({worked['new']} new, "
          f"{worked['dead_lettered']} dead-lettered, {worked['batches']} batches), first record to last commit "
          f"{span:.1f} s = {rate:.2f} documents/s (wall {wall:.1f} s with start-up, group join, 3 s idle tail; "
          f"CPU {cpu:.1f} s = {1000 * cpu / worked['consumed']:.0f} ms/document; load {os.getloadavg()[0]:.1f})")
    return "worker", rate


def in_process(bootstrap: str, docs: int, pdfs: int, rounds: int) -> float:
    """Ingest and worker in this process over one model, alternating; the best rate of each."""
    sys.path.insert(0, str(ROOT))
    from ingest.embed.local import LocalMiniLMEmbedder
    from services.application import Application
    from services.ingestion import IngestTargets
    from services.settings import Settings
    from services.streaming import ProduceRequest
    from services.wiring import Components

    model = LocalMiniLMEmbedder()

    def application(home: Path, **kafka: str) -> Application:
        components = Components(Settings(home=home, kafka=kafka))  # type: ignore[arg-type]
        components.__dict__["embedder"] = model
        return Application(components)

    best = {"ingest": 0.0, "worker": 0.0}
    with tempfile.TemporaryDirectory(prefix="ragline-bench-worker-") as tmp:
        work = Path(tmp)
        count = write_corpus(work / "corpus", docs, pdfs)
        for round_ in range(rounds):
            app = application(work / f"ingest{round_}")
            assert app.ingestion is not None  # built (the index opened) before the clock starts
            started, cpu = time.perf_counter(), time.process_time()
            run = app.ingestion.ingest(IngestTargets([str(work / "corpus")], "default"))
            rate = count / (time.perf_counter() - started)
            print(f"in-process ingest: {sum(run.summary.documents.values())} documents, {rate:.2f} documents/s, "
                  f"CPU {1000 * (time.process_time() - cpu) / count:.0f} ms/document (this process)")
            best["ingest"] = max(best["ingest"], rate)
            app.close()
            run_id = uuid.uuid4().hex[:8]
            app = application(work / f"worker{round_}", bootstrap=bootstrap, ingest_topic=f"bench{run_id}.requests",
                              ingest_dlq_topic=f"bench{run_id}.dlq", worker_group=f"bench{run_id}")
            app.streaming.produce(ProduceRequest([str(work / "corpus")], "default"))
            worker = app.streaming.worker()
            cpu = time.process_time()
            report = worker.run(until_idle_s=2)
            assert report.first_record_at is not None and report.last_commit_at is not None
            rate = report.consumed / (report.last_commit_at - report.first_record_at)
            print(f"in-process worker: {report.consumed} requests, {rate:.2f} documents/s (first record to last "
                  f"commit), CPU {1000 * (time.process_time() - cpu) / count:.0f} ms/document (this process, with "
                  f"the group join and idle tail)")
            best["worker"] = max(best["worker"], rate)
            app.close()
    ratio = best["worker"] / best["ingest"]
    print(f"ratio   in-process worker / ingest (best of {rounds}): {best['worker']:.2f} / {best['ingest']:.2f} "
          f"documents/s = {ratio:.2f}  {'PASS' if ratio >= GOAL_RATIO else 'MISS'} (goal >= {GOAL_RATIO})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300, help="synthetic text documents")
    parser.add_argument("--pdfs", type=int, default=6, help="PDFs of tests/corpora to add")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, the order alternating; best of each kept")
    parser.add_argument("--in-process-rounds", type=int, default=2, help="rounds in one process (0: skip)")
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
            if args.in_process_rounds > 0:
                in_process(bootstrap, args.docs, args.pdfs, args.in_process_rounds)
        finally:
            if env is not None:
                subprocess.run([str(KAFKA_SH), "stop", "--clean"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
