"""Query path at scale: Qdrant Edge search, then ``/v1/retrieve`` and ``/v1/query`` over HTTP.

Run: ``python bench/query.py [--chunks 100000] [--real 2000] [--requests 500]``;
quick run: ``python bench/query.py --chunks 20000 --requests 200`` (~3 minutes once the real
vectors are cached in ``--cache-dir``; the first run also embeds ``--real`` chunks and the 1,109
SciFact queries: 5-10 chunks/s on this CPU, so ~5 more minutes). The full size takes ~9 minutes
(``optimize()`` alone ~2.5 minutes at 100,000 chunks on a loaded machine).

1. Builds a Qdrant Edge index of ``--chunks`` chunks in a temporary RAGLINE_HOME, in the
   collection the app serves (``Components(Settings(home=...)).collection``), with payloads
   shaped like the ingest pipeline's (~20 chunks per document, several tenants). Chunk texts
   are SciFact abstracts cut into sentence-packed chunks. The first ``--real`` chunks are
   embedded with the real local model; the rest get SYNTHETIC vectors (a real chunk's vector
   plus a random direction, renormalised: cosine ~0.7 to it) and that chunk's text.
   Embedding 100,000 chunks with the local model on this CPU would take hours.
2. ``optimize()`` (the HNSW build; it holds the GIL, so it runs before any server starts).
3. ``index.search`` with the tenant filter, k=10: p50/p95/p99 over ``--search-queries``
   real SciFact query vectors, and recall@k against exact search over the tenant's points.
4. Closes its shard and starts the real server (``ragline serve`` in a subprocess, same
   settings, RAGLINE_HOME pointing at the built home), then drives it with httpx:
   sequential latency of ``/v1/retrieve`` and ``/v1/query`` (extractive, lineage written),
   requests/s with 1, 2, 4, 8 concurrent clients, and the share of ``/v1/query`` latency per
   stage from the ``timings`` field of the responses. Every request carries a distinct query
   text (SciFact queries, then titles, then abstract first sentences).

No timed assertions: it prints figures, the machine load (2 cores, shared with whoever runs
tests) and a verdict line per target.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas import ids  # noqa: E402
from schemas.retrieval import SearchFilter  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.wiring import Components  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "corpora" / "retrieval" / "scifact"
SEARCH_P99_TARGET_MS = 10.0
RETRIEVE_P50_TARGET_MS = 25.0
TARGET_CHUNKS = 100_000
CHUNK_WORDS = 120  # the pipeline's default budget is ~196 cl100k tokens (~150 words)
SYNTHETIC_NOISE = 1.0  # |noise| relative to the unit base vector: cosine ~0.71 to it
BUILD_BLOCK = 5_000
EMBED_BATCH = 16


# ---------------------------------------------------------------- small helpers


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def summary(values: list[float]) -> str:
    return f"p50 {pct(values, 50):7.2f}  p95 {pct(values, 95):7.2f}  p99 {pct(values, 99):7.2f}  ms  (n={len(values)})"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def log(message: str) -> None:
    print(message, flush=True)


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class ChunkText:
    title: str
    text: str


def scifact_chunks(limit: int) -> list[ChunkText]:
    """SciFact abstracts cut at sentence ends into chunks of at most CHUNK_WORDS words."""
    out: list[ChunkText] = []
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", " ".join(doc["text"].split()))
            current: list[str] = []
            for sentence in sentences:
                if current and len(" ".join([*current, sentence]).split()) > CHUNK_WORDS:
                    out.append(ChunkText(doc["title"], " ".join(current)))
                    current = []
                current.append(sentence)
            if current:
                out.append(ChunkText(doc["title"], " ".join(current)))
            if len(out) >= limit:
                return out[:limit]
    return out


def query_texts() -> list[str]:
    """Distinct, realistic query texts: SciFact queries, then paper titles, then first sentences."""
    pool: dict[str, None] = {}
    with (SCIFACT / "queries.jsonl").open() as fh:
        for line in fh:
            pool[json.loads(line)["text"].strip()] = None
    titles: list[str] = []
    firsts: list[str] = []
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            titles.append(doc["title"].strip())
            first = re.split(r"(?<=[.!?])\s+", doc["text"].strip(), maxsplit=1)[0]
            if 20 <= len(first) <= 400:
                firsts.append(first)
    for text in (*titles, *firsts):
        if text:
            pool[text] = None
    return list(pool)


def scifact_queries() -> list[str]:
    with (SCIFACT / "queries.jsonl").open() as fh:
        return [json.loads(line)["text"].strip() for line in fh]


# ---------------------------------------------------------------- vectors


class VectorCache:
    """Real embeddings survive between runs (keyed by model version and the exact texts)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def embed(self, components: Components, texts: list[str], label: str) -> tuple[np.ndarray, float, bool]:
        """Returns (vectors, texts per second when they were embedded, came from cache)."""
        embedder = components.embedder
        key = hashlib.sha256("\x1f".join([embedder.model_version, *texts]).encode()).hexdigest()[:20]
        if self.root:
            path = self.root / f"{label}-{len(texts)}-{key}.npy"
            meta = path.with_suffix(".json")
            if path.exists() and meta.exists():
                return np.load(path), float(json.loads(meta.read_text())["per_s"]), True
        started = time.perf_counter()
        parts = []
        for i in range(0, len(texts), EMBED_BATCH):
            parts.append(embedder.embed_array(texts[i : i + EMBED_BATCH]))
            done = min(i + EMBED_BATCH, len(texts))
            if done % 400 < EMBED_BATCH or done == len(texts):
                rate = done / (time.perf_counter() - started)
                log(f"    embedded {done:>6,}/{len(texts):,} {label} ({rate:.1f}/s)")
        vectors = np.vstack(parts).astype(np.float32)
        per_s = len(texts) / (time.perf_counter() - started)
        if self.root:
            self.root.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
            meta.write_text(json.dumps({"per_s": per_s, "model": embedder.model_version, "texts": len(texts)}))
        return vectors, per_s, False


def synthetic_vectors(real: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` unit vectors, each a random real vector plus a random direction of norm
    SYNTHETIC_NOISE, renormalised. Returns (vectors, index of the real vector each came from)."""
    base = rng.integers(0, len(real), size=count)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for i in range(0, count, 20_000):
        sl = slice(i, min(i + 20_000, count))
        noise = rng.standard_normal((sl.stop - sl.start, real.shape[1])).astype(np.float32)
        noise *= SYNTHETIC_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
        v = real[base[sl]] + noise
        out[sl] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, base


# ---------------------------------------------------------------- index build


@dataclass
class Built:
    home: Path
    collection: str
    default_tenant: str
    tenants: list[str]
    point_ids: list[str]
    point_tenant: np.ndarray  # tenant index of each point
    vectors: np.ndarray
    real: int
    figures: dict[str, Any] = field(default_factory=dict)


def build_index(components: Components, args: argparse.Namespace, texts: list[ChunkText], real_vectors: np.ndarray,
                rng: np.random.Generator) -> Built:
    settings = components.settings
    collection = components.collection
    fingerprint = components.pipeline_fingerprint
    index = components.index
    n, real = args.chunks, len(real_vectors)
    synthetic, base = synthetic_vectors(real_vectors, n - real, rng)
    vectors = np.vstack([real_vectors, synthetic])
    text_of = np.concatenate([np.arange(real), base])  # chunk text index of every point
    tenants = [settings.default_tenant] + [f"tenant-{i}" for i in range(1, args.tenants)]
    tag_sets: list[list[str]] = [[], ["public"], ["clinical"], ["clinical", "research"]]
    index.ensure_collection(collection, components.embedder.dimensions)
    # Every chunk gets its sparse (BM25) vector as ingest gives it, so hybrid search is measured.
    sparse_of = components.sparse_encoder.encode_documents([t.text for t in texts])

    point_ids: list[str] = []
    point_tenant = np.empty(n, dtype=np.int32)
    started = time.perf_counter()
    for lo in range(0, n, BUILD_BLOCK):
        hi = min(lo + BUILD_BLOCK, n)
        payloads: list[dict[str, Any]] = []
        block_ids: list[str] = []
        for pos in range(lo, hi):
            doc, chunk_index = divmod(pos, args.per_doc)
            t = doc % len(tenants)
            tenant = tenants[t]
            uri = f"s3://ragline-bench/{tenant}/scifact/doc-{doc:06d}.pdf"
            doc_id = ids.document_id(tenant, uri)
            doc_version = hashlib.sha256(f"bench-doc-{doc}".encode()).hexdigest()
            chunk = texts[int(text_of[pos])]
            page = 1 + chunk_index // 3
            tokens = int(len(chunk.text.split()) * 1.3)
            block_ids.append(ids.chunk_id(tenant, doc_id, doc_version, fingerprint, chunk_index))
            point_tenant[pos] = t
            payloads.append({
                "tenant": tenant, "document_id": doc_id, "document_version": doc_version, "source_uri": uri,
                "media_type": "application/pdf", "access_tags": tag_sets[doc % len(tag_sets)],
                "title": texts[int(text_of[doc * args.per_doc])].title, "chunk_index": chunk_index,
                "text": chunk.text, "start": chunk_index * 900, "end": chunk_index * 900 + len(chunk.text),
                "token_count": tokens, "page_start": page, "page_end": page + (chunk_index % 3 == 2),
                "heading_path": [chunk.title], "symbol": None,
            })
        index.upsert_arrays(collection, block_ids, vectors[lo:hi], payloads,
                            sparse=[sparse_of[int(text_of[pos])] for pos in range(lo, hi)])
        point_ids.extend(block_ids)
        if hi % 20_000 == 0 or hi == n:
            log(f"    upserted {hi:>7,}/{n:,} points ({hi / (time.perf_counter() - started):,.0f}/s)")
    upsert_s = time.perf_counter() - started
    return Built(settings.home, collection, settings.default_tenant, tenants, point_ids, point_tenant, vectors, real,
                 {"upsert_s": upsert_s, "upsert_per_s": n / upsert_s})


# ---------------------------------------------------------------- search


def time_search(components: Components, built: Built, qvecs: np.ndarray, count: int, k: int) -> list[float]:
    index, flt = components.index, SearchFilter(tenant=built.default_tenant)
    for i in range(min(20, count)):  # warm-up
        index.search(built.collection, qvecs[i % len(qvecs)], k, flt)
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        index.search(built.collection, qvecs[i % len(qvecs)], k, flt)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def time_search_after_embed(components: Components, built: Built, queries: list[str], qvecs: np.ndarray,
                            count: int, k: int) -> list[float]:
    """Search timed right after embedding the query, as the server does: onnxruntime's
    intra-op threads keep spinning for a while after a run and compete for the 2 cores."""
    index, flt, embedder = components.index, SearchFilter(tenant=built.default_tenant), components.embedder
    out = []
    for i in range(count):
        embedder.embed_array([queries[i % len(queries)]])
        t0 = time.perf_counter()
        index.search(built.collection, qvecs[i % len(qvecs)], k, flt)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def recall_at_k(components: Components, built: Built, qvecs: np.ndarray, count: int, k: int) -> float:
    """HNSW (filtered) against exact cosine search over the default tenant's points."""
    mine = np.flatnonzero(built.point_tenant == 0)
    tenant_vectors = built.vectors[mine]
    flt = SearchFilter(tenant=built.default_tenant)
    hits = total = 0
    for q in qvecs[:count]:
        exact = {built.point_ids[mine[j]] for j in np.argsort(-(tenant_vectors @ q))[:k]}
        got = {h.chunk_id for h in components.index.search(built.collection, q, k, flt)}
        hits += len(exact & got)
        total += k
    return hits / total if total else float("nan")


# ---------------------------------------------------------------- server


class Server:
    """``ragline serve`` in a subprocess on the built home (the only process with the shard open)."""

    def __init__(self, home: Path, log_path: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "RAGLINE_API__KEYS"}  # one default tenant
        env["RAGLINE_HOME"] = str(home)
        script = Path(sys.executable).with_name("ragline")
        cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from services.cli import main; main()"]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=os.getcwd())

    def wait_ready(self, timeout_s: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ragline serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=5)
                if r.status_code == 200:
                    return r.json()  # type: ignore[no-any-return]
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"ragline serve not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def rss_mb(self) -> float | None:
        try:
            import psutil

            return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20
        except Exception:  # noqa: BLE001 - psutil is optional (bench extra)
            return None

    def log_tail(self) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Sample:
    client_ms: float
    status: int
    body: dict[str, Any] | None


class Texts:
    """Hands out each query text once."""

    def __init__(self, pool: list[str]) -> None:
        self._pool = pool
        self._next = 0
        self._lock = threading.Lock()
        self.wrapped = False

    def take(self, n: int) -> list[str]:
        with self._lock:
            out = []
            for _ in range(n):
                if self._next >= len(self._pool):
                    self._next, self.wrapped = 0, True
                out.append(self._pool[self._next])
                self._next += 1
            return out

    @property
    def used(self) -> int:
        return self._next

    def __len__(self) -> int:
        return len(self._pool)


def call(client: httpx.Client, endpoint: str, text: str, k: int, mode: str | None = None) -> Sample:
    t0 = time.perf_counter()
    r = client.post(endpoint, json={"query": text, "k": k, **({"mode": mode} if mode else {})})
    ms = (time.perf_counter() - t0) * 1000
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    return Sample(ms, r.status_code, body if r.status_code == 200 else {"error": r.text[:300]})


def sequential(url: str, endpoint: str, texts: list[str], k: int, mode: str | None = None) -> list[Sample]:
    with httpx.Client(base_url=url, timeout=60) as client:
        return [call(client, endpoint, t, k, mode) for t in texts]


def concurrent(url: str, endpoint: str, texts: list[str], k: int, clients: int) -> tuple[float, list[Sample]]:
    """Returns (wall seconds, samples): ``clients`` threads, each with its own connection."""
    local = threading.local()
    opened: list[httpx.Client] = []
    lock = threading.Lock()

    def one(text: str) -> Sample:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=60)
            with lock:
                opened.append(client)
        return call(client, endpoint, text, k)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, texts[: clients * 2]))  # open the connections (texts reused only here)
        started = time.perf_counter()
        samples = list(pool.map(one, texts[clients * 2 :]))
        wall = time.perf_counter() - started
    for c in opened:
        c.close()
    return wall, samples


def ok(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.status == 200 and s.body is not None]


# ---------------------------------------------------------------- report


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.verdicts: list[str] = []

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))

    def verdict(self, target: str, measured: float, limit: float, note: str = "") -> None:
        state = "MET" if measured < limit else "MISSED"
        self.verdicts.append(f"{state:<6} {target}: measured {measured:.2f} ms (target < {limit:g} ms){note}")

    def print(self) -> None:
        width = max(len(n) for n, v in self.rows if v) + 2
        log("\n" + "=" * 100)
        log("RESULTS")
        log("=" * 100)
        for name, value in self.rows:
            log(f"{name:<{width}}{value}" if value else f"\n{name}")
        log("\nVERDICTS")
        for v in self.verdicts:
            log(f"  {v}")


def stage_shares(samples: list[Sample]) -> tuple[list[tuple[str, float, float]], float]:
    """Mean ms and share of the client-observed latency for each stage of /v1/query."""
    good = [s for s in ok(samples) if "timings" in s.body]  # type: ignore[operator]
    client = float(np.mean([s.client_ms for s in good]))
    t = {key: float(np.mean([s.body["timings"].get(key, 0.0) for s in good]))  # type: ignore[index]
         for key in ("embed_ms", "search_ms", "generate_ms", "lineage_ms", "total_ms")}
    other = t["total_ms"] - t["embed_ms"] - t["search_ms"] - t["generate_ms"] - t["lineage_ms"]
    http = client - t["total_ms"]
    stages = [("query embedding (embed_ms)", t["embed_ms"]), ("search (search_ms)", t["search_ms"]),
              ("generation, extractive (generate_ms)", t["generate_ms"]),
              ("lineage write (lineage_ms)", t["lineage_ms"]),
              ("rest of the answer service", other), ("HTTP + framework (client - total_ms)", http)]
    return [(name, ms, ms / client) for name, ms in stages], client


def http_overhead_median(samples: list[Sample]) -> float:
    return pct([s.client_ms - s.body["timings"]["total_ms"] for s in ok(samples)], 50)  # type: ignore[index]


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--chunks", type=int, default=100_000, help="points in the index")
    p.add_argument("--real", type=int, default=2_000, help="chunks embedded with the real model (rest synthetic)")
    p.add_argument("--per-doc", type=int, default=20, help="chunks per document")
    p.add_argument("--tenants", type=int, default=4, help="tenants sharing the collection (queries use one)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--search-queries", type=int, default=2_000, help="timed index.search calls")
    p.add_argument("--brute-force-queries", type=int, default=100, help="timed searches before optimize()")
    p.add_argument("--recall-queries", type=int, default=200)
    p.add_argument("--requests", type=int, default=500, help="HTTP requests per endpoint per phase")
    p.add_argument("--concurrency", default="1,2,4,8", help="concurrent client counts")
    p.add_argument("--cache-dir", type=Path,
                   default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragline" / "bench-query",
                   help="real embeddings cached here between runs")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temporary RAGLINE_HOME")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.chunks < 100 or args.per_doc < 1 or args.tenants < 1:
        p.error("--chunks >= 100, --per-doc >= 1, --tenants >= 1")
    return args


def main() -> None:
    args = parse_args()
    report = Report()
    rng = np.random.default_rng(args.seed)
    home = Path(tempfile.mkdtemp(prefix="ragline-bench-query-"))
    log(f"ragline bench/query.py  python {platform.python_version()}  qdrant-edge-py {version('qdrant-edge-py')}  "
        f"onnxruntime {version('onnxruntime')}  fastapi {version('fastapi')}  uvicorn {version('uvicorn')}")
    log(f"RAGLINE_HOME {home}")
    log(f"start: {load_line()}  (other engineers may be running tests: figures are lower bounds)")
    report.add("machine", f"{os.cpu_count()} cores; {load_line()} at start")

    components = Components(Settings(home=home))
    server: Server | None = None
    try:
        # ---- vectors
        t0 = time.perf_counter()
        embedder = components.embedder
        collection = components.collection
        log(f"embedder {embedder.model_version} ({embedder.dimensions}-d), collection {collection} "
            f"(loaded in {time.perf_counter() - t0:.1f} s)")
        texts = scifact_chunks(max(args.real, 1))
        real = min(args.real, len(texts), args.chunks)
        cache = VectorCache(None if args.no_cache else args.cache_dir)
        log(f"[1/5] real vectors: embedding {real:,} SciFact chunks (<= {CHUNK_WORDS} words) with the local model")
        real_vectors, per_s, cached = cache.embed(components, [c.text for c in texts[:real]], "chunks")
        queries = scifact_queries()
        log(f"      query vectors: {len(queries):,} SciFact queries")
        qvecs, q_per_s, q_cached = cache.embed(components, queries, "queries")
        hours = args.chunks / per_s / 3600
        synth = args.chunks - real
        report.add("INDEX", "")
        report.add("chunks indexed", f"{args.chunks:,} in {args.chunks // args.per_doc:,} documents "
                   f"({args.per_doc}/doc), {args.tenants} tenants, collection {collection}")
        report.add("  real vectors", f"{real:,} chunks embedded with {embedder.model_version} "
                   f"at {per_s:.1f} chunks/s{' (cached from an earlier run)' if cached else ''}")
        report.add("  SYNTHETIC vectors", f"{synth:,} chunks ({synth / args.chunks:.0%}): a real chunk's vector "
                   f"+ random direction (norm {SYNTHETIC_NOISE}), renormalised, float32; that chunk's text")
        report.add("  why synthetic", f"embedding {args.chunks:,} chunks at {per_s:.1f}/s on this CPU "
                   f"would take ~{hours:.1f} h")

        # ---- build + optimize
        log(f"[2/5] upserting {args.chunks:,} points into Qdrant Edge (bulk upsert_arrays)")
        built = build_index(components, args, texts, real_vectors, rng)
        report.add("upsert", f"{built.figures['upsert_s']:.1f} s ({built.figures['upsert_per_s']:,.0f} points/s,"
                   " payloads included)")
        n_bf = min(args.brute_force_queries, args.search_queries)
        if n_bf:
            log(f"      {n_bf} searches before optimize() (unindexed points are scanned)")
            brute = time_search(components, built, qvecs, n_bf, args.k)
            report.add("search before optimize()", summary(brute))
        log(f"      optimize() (HNSW build; holds the GIL) ... {load_line()}")
        t0 = time.perf_counter()
        components.index.optimize(collection)
        optimize_s = time.perf_counter() - t0
        indexed = components.index.indexed_vectors(collection)  # type: ignore[attr-defined]
        report.add("optimize() / HNSW build", f"{optimize_s:.1f} s; indexed_vectors_count {indexed:,}")
        log(f"      optimize() took {optimize_s:.1f} s; indexed {indexed:,}")

        # ---- search itself
        mine = int((built.point_tenant == 0).sum())
        log(f"[3/5] index.search, tenant filter ({built.default_tenant!r}: {mine:,} of {args.chunks:,} points), "
            f"k={args.k}, {args.search_queries:,} queries ... {load_line()}")
        search_ms = time_search(components, built, qvecs, args.search_queries, args.k)
        after_embed = time_search_after_embed(components, built, queries, qvecs, min(300, args.search_queries),
                                              args.k)
        recall = recall_at_k(components, built, qvecs, min(args.recall_queries, len(qvecs)), args.k)
        report.add("SEARCH (in process, QdrantEdgeIndex.search)", "")
        report.add(f"  tenant-filtered, k={args.k}", summary(search_ms))
        report.add("  same, right after a query embed", summary(after_embed) + "  (as in the server)")
        report.add("  filter selectivity", f"{mine:,} of {args.chunks:,} points in the queried tenant")
        report.add(f"  recall@{args.k} vs exact", f"{recall:.3f} over {min(args.recall_queries, len(qvecs))} "
                   f"queries (ef_search {components.settings.index.hnsw.ef_search})")
        note = "" if args.chunks >= TARGET_CHUNKS else f" [at {args.chunks:,} chunks; the target is set at 100,000]"
        report.verdict(f"search p99 at {args.chunks:,} chunks", pct(search_ms, 99), SEARCH_P99_TARGET_MS, note)
        report.add("  load during search", load_line())
        components.close()  # flush and release the shard: the server must be its only owner
        del built.vectors

        # ---- HTTP
        log(f"[4/5] starting ragline serve on the built home ... {load_line()}")
        server = Server(home, home / "serve.log")
        t0 = time.perf_counter()
        ready = server.wait_ready()
        startup_s = time.perf_counter() - t0
        if ready.get("collection") != collection:
            raise RuntimeError(f"server serves {ready.get('collection')!r}, the bench built {collection!r}")
        log(f"      ready in {startup_s:.1f} s at {server.url}, serving {collection}")
        pool = Texts(query_texts())
        log(f"      {len(pool):,} distinct query texts available")

        for endpoint in ("/v1/retrieve", "/v1/query"):
            warm = sequential(server.url, endpoint, pool.take(10), args.k)
            bad = [s for s in warm if s.status != 200]
            if bad:
                raise RuntimeError(f"{endpoint} answered {bad[0].status}: {bad[0].body}\n{server.log_tail()}")

        log(f"      sequential: {args.requests} x /v1/retrieve, {args.requests} x /v1/query ... {load_line()}")
        seq = {ep: sequential(server.url, ep, pool.take(args.requests), args.k) for ep in ("/v1/retrieve", "/v1/query")}
        report.add("HTTP, SEQUENTIAL (one client, keep-alive; client-observed)", "")
        report.add("  server", f"ragline serve (uvicorn, 1 process) started in {startup_s:.1f} s")
        for ep, samples in seq.items():
            good = ok(samples)
            report.add(f"  {ep}", summary([s.client_ms for s in good])
                       + (f"  errors {len(samples) - len(good)}" if len(good) < len(samples) else ""))
        r_good = ok(seq["/v1/retrieve"])
        r_embed = [s.body["timings"]["embed_ms"] for s in r_good]  # type: ignore[index]
        r_search = [s.body["timings"]["search_ms"] for s in r_good]  # type: ignore[index]
        report.add("  /v1/retrieve server embed_ms", summary(r_embed))
        report.add("  /v1/retrieve server search_ms", summary(r_search))
        report.add("  /v1/retrieve outside embed+search",
                   f"mean {np.mean([s.client_ms for s in r_good]) - np.mean(r_embed) - np.mean(r_search):.2f} ms "
                   "(HTTP, validation, serialisation)")
        q_good = ok(seq["/v1/query"])
        no_answer = sum(1 for s in q_good if s.body.get("no_answer"))  # type: ignore[union-attr]
        report.add("  /v1/query no_answer share", f"{no_answer / max(len(q_good), 1):.0%} "
                   f"(below min_score {components.settings.generation.min_score}: generation skipped, lineage still"
                   " written)")
        report.add("  load during sequential", load_line())
        report.verdict("/v1/retrieve p50 (local embedder, hybrid: the default mode)",
                       pct([s.client_ms for s in r_good], 50), RETRIEVE_P50_TARGET_MS,
                       f" [index of {args.chunks:,} chunks]")
        dense = ok(sequential(server.url, "/v1/retrieve", pool.take(args.requests), args.k, mode="dense"))
        report.add("  /v1/retrieve mode=dense (same server)", summary([s.client_ms for s in dense]))
        report.add("  /v1/retrieve mode=dense server search_ms",
                   summary([s.body["timings"]["search_ms"] for s in dense]))  # type: ignore[index]

        shares, client_mean = stage_shares(seq["/v1/query"])
        report.add(f"SHARE OF /v1/query LATENCY (sequential, mean client-observed {client_mean:.2f} ms)", "")
        for name, ms, share in shares:
            report.add(f"  {name}", f"{ms:8.2f} ms  {share:6.1%}")
        report.add("  HTTP + framework, median", f"{http_overhead_median(seq['/v1/query']):8.2f} ms (the mean is "
                   "pulled up by scheduling stalls on a loaded machine)")

        log(f"[5/5] concurrent clients {args.levels}, {args.requests} requests per endpoint per level")
        report.add("HTTP, CONCURRENT CLIENTS (threads, one keep-alive connection each)", "")
        for clients in args.levels:
            for ep in ("/v1/retrieve", "/v1/query"):
                wall, samples = concurrent(server.url, ep, pool.take(args.requests + clients * 2), args.k, clients)
                good = ok(samples)
                lat = [s.client_ms for s in good]
                err = len(samples) - len(good)
                report.add(f"  {clients} client{'s' if clients > 1 else ' '} {ep:<13}",
                           f"{len(good) / wall:7.1f} req/s   p50 {pct(lat, 50):7.2f}  p99 {pct(lat, 99):7.2f} ms"
                           + (f"  errors {err}" if err else ""))
                log(f"      {clients} clients {ep}: {len(good) / wall:.1f} req/s ... {load_line()}")
        report.add("  load after concurrency", load_line())
        rss = server.rss_mb()
        if rss is not None:
            report.add("  server RSS at end", f"{rss:,.0f} MB")
        report.add("  query texts", f"{pool.used:,} distinct texts sent"
                   + (" (pool exhausted: some texts were reused)" if pool.wrapped else ", none repeated"))
    finally:
        if server is not None:
            server.stop()
        components.close()
        if args.keep:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    report.add("end", load_line())
    report.print()


if __name__ == "__main__":
    main()
