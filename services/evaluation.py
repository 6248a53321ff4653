"""``ragline eval``: retrieval quality on a BEIR-format test collection, per mode.

A BEIR folder holds ``corpus.jsonl`` ({"_id", "title", "text"}), ``queries.jsonl``
({"_id", "text"}) and ``qrels/<split>.tsv`` (query-id, corpus-id, score, with a header).
The corpus is ingested into a throwaway home (an embedded Qdrant Edge index under a
temporary folder; ``home`` keeps and reuses one, so a second run embeds nothing), unless
``use_index`` evaluates the current index as it is. Each query runs through the same
retrieval use case as the API (:meth:`AnswerService.retrieve`, unchecked: eval is not
bound by the API's ``k`` cap), once per mode.

Mapping hits to documents: a document is ranked by its best chunk (``group_by``
"document": the first time one of its chunks appears in the fused ranking). A corpus
document ingested here has its BEIR id as ``document_id``; in an existing index a hit
matches a corpus id by ``document_id``, else by its source file's name without suffix.

Metrics, over the queries that have judgements: nDCG@10 (linear gains, as trec_eval and
BEIR compute it), recall@10, recall@100 and MRR@10 (reciprocal rank of the first relevant
document within the top 10).

``--compare A.toml B.toml`` evaluates two configurations on the same queries: each file
holds settings overrides shaped like ``ragline.toml`` (``[chunking]``, ``[retrieval]``,
``[embedding]``, ...) applied over the current settings, each is ingested into a home of its
own (``home/a`` and ``home/b`` when kept), and every metric of every mode both ran gets
A, B, B - A and the p-value of a paired randomization test over the per-query scores.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pydantic import ValidationError

from schemas.documents import SourceDocument
from schemas.errors import ConfigurationError
from schemas.retrieval import RETRIEVAL_MODES, RetrievalMode, RetrievedChunk, SearchFilter
from services.application import Application, build_application
from services.settings import Settings

DEPTH = 100  # documents retrieved per query (recall@100)
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
RERANKED = "hybrid+rerank"


@dataclass(frozen=True)
class BeirSet:
    folder: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        return self.folder.name

    def corpus(self) -> Iterator[dict[str, Any]]:
        with (self.folder / "corpus.jsonl").open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def load_beir(folder: Path, split: str = "test") -> BeirSet:
    """Queries that have judgements in ``qrels/<split>.tsv`` (relevance > 0 counts)."""
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).is_file():
            raise ConfigurationError(f"{folder}: not a BEIR folder (missing {name})")
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
                continue  # the header
            if len(parts) < 3:
                raise ConfigurationError(f"{folder}/qrels/{split}.tsv:{n + 1}: expected query-id, corpus-id, score")
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in qrels:
                    queries[str(q["_id"])] = str(q["text"])
    return BeirSet(folder, queries, {q: r for q, r in qrels.items() if q in queries})


def ndcg(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: list[str], rels: dict[str, int], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if rels.get(d, 0) > 0), 0.0)


def score_query(ranked: list[str], rels: dict[str, int]) -> dict[str, float]:
    return {"ndcg@10": ndcg(ranked, rels), "recall@10": recall(ranked, rels, 10),
            "recall@100": recall(ranked, rels, 100), "mrr@10": mrr(ranked, rels)}


@dataclass
class EvalReport:
    dataset: str
    queries: int
    documents: int
    collection: str
    modes: dict[str, dict[str, float]] = field(default_factory=dict)
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # mode -> query -> metrics
    duplicate_top10: int = 0  # top-10 lists in which one passage showed twice (should stay 0)
    retrieve_ms_p50: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "queries": self.queries, "documents": self.documents,
                "collection": self.collection,
                "modes": {m: {k: round(v, 4) for k, v in s.items()} for m, s in self.modes.items()},
                "duplicate_top10": self.duplicate_top10,
                "retrieve_ms_p50": {m: round(v, 2) for m, v in self.retrieve_ms_p50.items()}}


def corpus_source(doc: dict[str, Any], dataset: str, tenant: str) -> SourceDocument:
    """A BEIR document as ragline ingests it: Markdown with its title as the heading."""
    title, text = str(doc.get("title") or "").strip(), str(doc.get("text") or "")
    body = f"# {title}\n\n{text}" if title else text
    return SourceDocument(source_uri=f"beir://{dataset}/{doc['_id']}.md", data=body.encode("utf-8"),
                          tenant=tenant, document_id=str(doc["_id"]), media_type="text/markdown")


def _corpus_id(chunk: RetrievedChunk, ids: set[str]) -> str:
    if chunk.document_id in ids:
        return chunk.document_id
    return PurePosixPath(chunk.source_uri.split("://", 1)[-1]).stem


def evaluate(application: Application, dataset: BeirSet, *, modes: tuple[str, ...] = (), tenant: str | None = None,
             corpus_ids: set[str] | None = None, documents: int = 0,
             on_query: Callable[[], None] | None = None) -> EvalReport:
    """Run every query in every mode (``hybrid+rerank`` only with a reranker configured)."""
    answering = application.answering
    wanted = list(modes or RETRIEVAL_MODES)
    if not modes and answering.has_reranker:
        wanted.append(RERANKED)
    flt = SearchFilter(tenant=tenant or application.settings.default_tenant)
    ids = corpus_ids if corpus_ids is not None else {str(d["_id"]) for d in dataset.corpus()}
    report = EvalReport(dataset.name, len(dataset.queries), documents or len(ids), answering.retriever.collection)
    for mode in wanted:
        base: RetrievalMode = "hybrid" if mode == RERANKED else mode  # type: ignore[assignment]
        per_query: dict[str, dict[str, float]] = {}
        times = []
        for qid, text in dataset.queries.items():
            chunks, timings = answering.retrieve(text, DEPTH, flt, checked=False, mode=base, group_by="document",
                                                 rerank=mode == RERANKED)
            times.append(sum(timings.values()))
            ranked = list(dict.fromkeys(_corpus_id(c, ids) for c in chunks))
            per_query[qid] = score_query(ranked, dataset.qrels[qid])
            report.duplicate_top10 += _has_duplicate(chunks)
            if on_query:
                on_query()
        report.per_query[mode] = per_query
        report.modes[mode] = {m: sum(q[m] for q in per_query.values()) / max(len(per_query), 1) for m in METRICS}
        report.retrieve_ms_p50[mode] = sorted(times)[len(times) // 2] if times else 0.0
    return report


def _has_duplicate(chunks: list[RetrievedChunk]) -> int:
    from retrieval.retriever import passage_key

    keys = [passage_key(c.text) for c in chunks[:10]]
    return int(len(keys) != len(set(keys)))


def eval_settings(settings: Settings, home: Path) -> Settings:
    """The configuration under test, on a home of its own with an embedded index."""
    return settings.model_copy(update={"home": home, "database_url": None,
                                       "index": settings.index.model_copy(update={"backend": "edge"})})


@contextmanager
def eval_home(home: Path | None) -> Iterator[Path]:
    """``home`` as given (kept, reused), or a temporary folder removed afterwards."""
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        yield home
        return
    tmp = Path(tempfile.mkdtemp(prefix="ragline-eval-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_eval(settings: Settings, folder: Path, *, split: str = "test", use_index: bool = False,
             home: Path | None = None, modes: tuple[str, ...] = (), tenant: str | None = None,
             on_document: Callable[[], None] | None = None, on_query: Callable[[], None] | None = None) -> EvalReport:
    """The ``ragline eval`` use case: ingest the corpus into a throwaway home (or use the
    current index), then evaluate each mode."""
    dataset = load_beir(folder, split)
    if use_index:
        application = build_application(settings)
        try:
            return evaluate(application, dataset, modes=modes, tenant=tenant, on_query=on_query)
        finally:
            application.close()
    with eval_home(home) as where:
        configured = eval_settings(settings, where)
        application = build_application(configured)
        try:
            owner = tenant or application.settings.default_tenant
            ids: set[str] = set()
            failed = []
            for doc in dataset.corpus():
                ids.add(str(doc["_id"]))
                outcome = application.ingestion.ingest_document(corpus_source(doc, dataset.name, owner))
                if outcome.status == "failed":
                    failed.append(f"{doc['_id']}: {outcome.error}")
                if on_document:
                    on_document()
            application.generations.after_ingest(application.settings.index.optimize_after_points)
        finally:
            application.close()
        # Opened again: a kept home's alias may just have moved to the generation built now.
        application = build_application(configured)
        try:
            report = evaluate(application, dataset, modes=modes, tenant=owner, corpus_ids=ids, on_query=on_query)
            report.documents = len(ids) - len(failed)
            return report
        finally:
            application.close()


# --- comparing two configurations -------------------------------------------------------

SIGNIFICANCE_SAMPLES = 10_000
SIGNIFICANCE_SEED = 0
EXACT_UP_TO = 13  # queries: all 2**13 = 8,192 sign assignments are fewer than the samples drawn
SIGNIFICANCE_TEST = "paired randomization test (two-sided, per-query sign flips of B - A)"


def paired_randomization_test(a: Sequence[float], b: Sequence[float], *, samples: int = SIGNIFICANCE_SAMPLES,
                              seed: int = SIGNIFICANCE_SEED) -> float:
    """Two-sided p-value of the mean per-query difference ``b - a``.

    Fisher's randomization test, as Smucker, Allan & Carterette (CIKM 2007) recommend for IR
    evaluation: under the null hypothesis the two systems are exchangeable on each query, so
    each query's difference keeps or flips its sign. With few queries every assignment is
    enumerated (exact); otherwise ``samples`` are drawn with a fixed seed (a rerun prints the
    same p) and counted with the observed one, so p is never 0 (Phipson & Smyth 2010). No
    scipy: it is not a dependency, and this is the whole test (a t-test would assume normal
    differences, which bounded, tied IR scores are not)."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return 1.0
    observed = abs(float(diff.mean())) - 1e-12  # equal means up to float rounding count as reached
    if n <= EXACT_UP_TO:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        return float(np.count_nonzero(np.abs(signs @ diff) / n >= observed)) / len(signs)
    rng = np.random.default_rng(seed)
    reached = 0
    for start in range(0, samples, 1000):  # blocks: memory stays ~1000 x n whatever the sample count
        block = rng.integers(0, 2, size=(min(1000, samples - start), n), dtype=np.int8) * 2 - 1
        reached += int(np.count_nonzero(np.abs(block @ diff) / n >= observed))
    return (reached + 1) / (samples + 1)


@dataclass(frozen=True)
class MetricComparison:
    a: float
    b: float
    p: float

    @property
    def delta(self) -> float:
        return self.b - self.a

    def to_dict(self) -> dict[str, float]:
        return {"a": round(self.a, 4), "b": round(self.b, 4), "delta": round(self.delta, 4), "p": round(self.p, 4)}


@dataclass(frozen=True)
class CompareReport:
    a: str  # the configuration files as given
    b: str
    reports: tuple[EvalReport, EvalReport]
    modes: dict[str, dict[str, MetricComparison]]

    def to_dict(self) -> dict[str, Any]:
        first, second = self.reports
        return {"compare": {
            "a": self.a, "b": self.b, "dataset": first.dataset, "queries": first.queries,
            "documents": {"a": first.documents, "b": second.documents},
            "collections": {"a": first.collection, "b": second.collection},
            "test": {"method": SIGNIFICANCE_TEST, "samples": SIGNIFICANCE_SAMPLES, "seed": SIGNIFICANCE_SEED,
                     "exact_up_to_queries": EXACT_UP_TO},
            "modes": {m: {k: c.to_dict() for k, c in s.items()} for m, s in self.modes.items()}}}


def compare_reports(a: EvalReport, b: EvalReport) -> dict[str, dict[str, MetricComparison]]:
    """Every metric of every mode both evaluated, paired by query."""
    compared: dict[str, dict[str, MetricComparison]] = {}
    for mode in (m for m in a.per_query if m in b.per_query):
        queries = sorted(set(a.per_query[mode]) & set(b.per_query[mode]))
        compared[mode] = {}
        for metric in METRICS:
            xs = [a.per_query[mode][q][metric] for q in queries]
            ys = [b.per_query[mode][q][metric] for q in queries]
            compared[mode][metric] = MetricComparison(
                a.modes[mode][metric], b.modes[mode][metric], paired_randomization_test(xs, ys))
    return compared


def load_configuration(path: Path, base: Settings) -> Settings:
    """``base`` with the overrides of a TOML file shaped like the settings (``[retrieval]``,
    ``[chunking]``, ...), validated as a whole; an error names the file and the field."""
    try:
        overrides = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return type(base).model_validate(_merged(base.model_dump(), overrides))
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["type"], err["msg"], err.get("input")) for err in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from exc


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _problem(loc: tuple[int | str, ...], kind: str, message: str, value: object) -> str:
    """``group.field = value: what is wrong``; a value is shown when it is a plain scalar of a
    field that is no secret (never a key or a password)."""
    where = ".".join(str(part) for part in loc) or "settings"
    if kind == "extra_forbidden":
        return f"{where}: no such setting"
    secret = any(word in where for word in ("key", "password", "secret"))
    shown = isinstance(value, (str, int, float, bool)) and not secret
    return f"{where}{f' = {value!r}' if shown else ''}: {message}"


def run_compare(settings: Settings, folder: Path, config_a: Path, config_b: Path, *, split: str = "test",
                home: Path | None = None, modes: tuple[str, ...] = (), tenant: str | None = None,
                on_document: Callable[[], None] | None = None,
                on_query: Callable[[], None] | None = None) -> CompareReport:
    """The ``ragline eval --compare`` use case: both files are validated before anything runs,
    then each configuration is evaluated in a home of its own (``home/a``, ``home/b`` when
    kept: a rerun embeds nothing) on the same queries, and the two are compared per query."""
    configured = [load_configuration(config_a, settings), load_configuration(config_b, settings)]
    first, second = (run_eval(cfg, folder, split=split, home=home / label if home is not None else None,
                              modes=modes, tenant=tenant, on_document=on_document, on_query=on_query)
                     for label, cfg in zip("ab", configured, strict=True))
    return CompareReport(str(config_a), str(config_b), (first, second), compare_reports(first, second))
