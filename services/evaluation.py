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
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

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
