"""Hybrid retrieval end to end on real components (the offline MiniLM model, Qdrant Edge and
qdrant-client local mode): an exact rare token is found at rank 1, no passage shows twice in a
top-k (an exact copy, or one differing by whitespace, is collapsed into one hit naming both
documents), group_by=document, the reranker seam, and a generation built before sparse
vectors still answering (densely, and saying so)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from retrieval.retriever import collapse_duplicates, passage_key
from schemas.retrieval import RerankResult, RetrievedChunk, SearchFilter
from services.application import Application
from tests.retrieval.apps import BACKENDS, application_over

PASSAGE = ("Quarterly access reviews are mandatory for every production system. The service owner signs off "
           "the list of accounts and removes stale ones within five working days.")
DOCS = {
    "policy": f"# Access policy\n\n{PASSAGE}\n",
    "copy": f"# Access policy\n\n{PASSAGE}\n",  # an exact copy in another document
    "copy-space": f"# Access policy\n\n{PASSAGE} \n\n",  # a copy differing by trailing whitespace
    "rare": "# Lab notes\n\nThe sample labelled ZEBRAQUUX was stored at minus eighty degrees in freezer two.\n",
    "vacation": "# Leave\n\nEmployees accrue two days of paid leave per month, capped at thirty days.\n",
    "incident": "# Incidents\n\nA severity one incident must be acknowledged within fifteen minutes by the on-call.\n",
    "backup": "# Backups\n\nNightly backups are kept for thirty five days and restored quarterly as a drill.\n",
}
FLT = SearchFilter(tenant="default")


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, make_components: Any, tmp_path: Any) -> Application:
    return application_over(make_components, tmp_path, request.param, DOCS)


def test_an_exact_rare_token_is_found_at_rank_1(app: Application) -> None:
    for mode in ("sparse", "hybrid"):
        chunks, _ = app.answering.retrieve("ZEBRAQUUX", 5, FLT, mode=mode)  # type: ignore[arg-type]
        assert chunks[0].document_id == "rare", mode
        assert chunks[0].rank == 1 and "ZEBRAQUUX" in chunks[0].text


def test_no_passage_shows_twice_in_a_top_k(app: Application) -> None:
    for mode in ("dense", "sparse", "hybrid"):
        chunks, _ = app.answering.retrieve("how often are access reviews done", 6, FLT, mode=mode)  # type: ignore[arg-type]
        keys = [passage_key(c.text) for c in chunks]
        assert len(keys) == len(set(keys)), mode
        (review,) = [c for c in chunks if "access reviews" in c.text]
        holders = {review.document_id, *review.also_in}
        assert holders == {"policy", "copy", "copy-space"}, mode  # citations can still name every holder
        assert [c.rank for c in chunks] == list(range(1, len(chunks) + 1))


def test_scores_stay_cosine_similarities_in_every_mode(app: Application) -> None:
    dense, _ = app.answering.retrieve("paid leave per month", 3, FLT, mode="dense")
    hybrid, _ = app.answering.retrieve("paid leave per month", 3, FLT, mode="hybrid")
    by_id = {c.chunk_id: c.score for c in dense}
    top = hybrid[0]
    assert top.document_id == "vacation" and top.score == pytest.approx(by_id[top.chunk_id], abs=1e-4)
    assert top.rank_score is not None and top.rank_score < 0.1  # an RRF score orders hybrid results


def test_group_by_document_returns_k_documents(app: Application) -> None:
    chunks, _ = app.answering.retrieve("stored backups incidents leave", 3, FLT, group_by="document")
    assert len({c.document_id for c in chunks}) == 3


def test_lineage_records_mode_and_fusion(app: Application) -> None:
    from sqlalchemy import select

    from lineage import parse
    from lineage.tables import outbox
    from services.answering import AnswerRequest

    outcome = app.answering.answer(AnswerRequest(query="ZEBRAQUUX sample storage", k=3, search_filter=FLT,
                                                 endpoint="/v1/query", mode="sparse"))
    with app.components.engine.connect() as conn:
        payload = conn.execute(select(outbox.c.payload).where(outbox.c.event_id == outcome.payload["answer_id"]))
        event = parse(payload.scalar_one())
    retrieval = event.get_data()["retrieval"]
    assert retrieval["mode"] == "sparse" and retrieval["reranker"] == "none" and retrieval["sparse"] == "bm25-v1"
    hybrid = app.answering.retrieve_with_params("ZEBRAQUUX", 3, FLT)[2]  # the default mode
    assert hybrid["mode"] == "hybrid" and hybrid["fusion"] == {"method": "rrf", "k": 60, "prefetch_limit": 100,
                                                               "weights": None}


class FakeReranker:
    """A double of the Reranker seam (no cross-encoder runs here): prefers texts holding 'freezer'."""

    model_version = "fake-reranker@1"

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        scored = [RerankResult(index=i, score=float("freezer" in t)) for i, t in enumerate(texts)]
        return sorted(scored, key=lambda r: -r.score)


def test_the_reranker_reorders_the_fused_candidates(app: Application) -> None:
    app.answering.retriever.reranker = FakeReranker()
    chunks, timings, params = app.answering.retrieve_with_params("access reviews", 3, FLT)
    assert chunks[0].document_id == "rare" and chunks[0].rank_score == 1.0
    assert params["reranker"] == "fake-reranker@1" and "rerank_ms" in timings


def chunk(doc: str, text: str, rank: int) -> RetrievedChunk:
    return RetrievedChunk(chunk_id=f"{doc}-{rank}", document_id=doc, document_version="v", source_uri=doc,
                          rank=rank, score=0.5, text=text)


def test_collapse_keeps_the_best_ranked_copy_and_near_copies() -> None:
    words = " ".join(f"w{i}" for i in range(60))
    hits = [chunk("a", words, 1), chunk("b", words.upper() + "  ", 2), chunk("c", "other text entirely", 3),
            chunk("d", words.replace("w59", "w60"), 4)]
    kept = collapse_duplicates(hits, 0.9)
    assert [c.document_id for c in kept] == ["a", "c"] and kept[0].also_in == ["b", "d"]
    assert [c.document_id for c in collapse_duplicates(hits, 1.0)] == ["a", "c", "d"]  # exact (normalized) only


def test_a_generation_without_sparse_vectors_answers_densely(make_components: Callable[..., Any]) -> None:
    import qdrant_edge as qe

    comps = make_components()
    old = "ragline-old-generation"
    path = comps.settings.home / "index" / old
    path.mkdir(parents=True)
    qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine)))
    from retrieval.retriever import Retriever

    retriever = Retriever(comps.embedder, comps.index, old, sparse=comps.sparse_encoder)
    result = retriever.run("anything", 3, FLT, mode="hybrid")
    assert result.chunks == [] and result.params["mode"] == "dense" and result.params["requested_mode"] == "hybrid"
