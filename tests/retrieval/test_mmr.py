"""MMR diversity (a request parameter) on real components: the offline MiniLM model, Qdrant Edge
and qdrant-client local mode. A reworded copy of the best passage (too different in words to be
collapsed as a duplicate, nearly the same in meaning) ranks second without MMR; with MMR it
moves down in favour of a different relevant passage, in every mode. λ = 1 keeps the ranking
exactly, and the answer's lineage records the λ used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from retrieval.mmr import mmr_order, relevance
from schemas.documents import SourceDocument
from schemas.retrieval import RerankResult, SearchFilter
from services.application import Application
from services.errors import InvalidInput
from tests.retrieval.apps import BACKENDS, application_over

DOCS = {
    "policy": "# Access reviews\n\nQuarterly access reviews are mandatory for every production system. The service "
              "owner signs off the list of accounts and removes stale ones within five working days.\n",
    "reworded": "# Reviewing access\n\nEvery production system must have its access reviewed each quarter. Service "
                "owners approve the account list and delete stale accounts within five business days.\n",
    "audit": "# Audit logging\n\nAccess to production systems is logged, and the security team audits the logs for "
             "unusual logins once a year.\n",
    "vacation": "# Leave\n\nEmployees accrue two days of paid leave per month, capped at thirty days.\n",
    "backup": "# Backups\n\nNightly backups are kept for thirty five days and restored quarterly as a drill.\n",
    "rare": "# Lab notes\n\nThe sample labelled ZEBRAQUUX was stored at minus eighty degrees in freezer two.\n",
}
QUESTION = "how often are access reviews of production systems done"
FLT = SearchFilter(tenant="default")
MODES = ("dense", "sparse", "hybrid")


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, make_components: Any, tmp_path: Any) -> Application:
    return application_over(make_components, tmp_path, request.param, DOCS)


def ranked(app: Application, mode: str, mmr: float | None, k: int = 4) -> list[str]:
    chunks, _ = app.answering.retrieve(QUESTION, k, FLT, mode=mode, mmr=mmr)  # type: ignore[arg-type]
    return [c.document_id for c in chunks]


def test_mmr_moves_a_reworded_copy_down_for_a_different_passage(app: Application) -> None:
    for mode in MODES:
        plain = ranked(app, mode, None)
        assert plain[:2] == ["policy", "reworded"], (mode, plain)  # not a duplicate: both kept without MMR
        diverse = ranked(app, mode, 0.5)
        assert diverse[:2] == ["policy", "audit"], (mode, diverse)
        assert "reworded" not in diverse[:2] and set(diverse) <= set(DOCS)


def test_lambda_1_keeps_the_ranking(app: Application) -> None:
    for mode in MODES:
        for group_by in (None, "document"):
            args = (QUESTION, 5, FLT)
            plain, _ = app.answering.retrieve(*args, mode=mode, group_by=group_by)  # type: ignore[arg-type]
            same, _ = app.answering.retrieve(*args, mode=mode, group_by=group_by, mmr=1.0)  # type: ignore[arg-type]
            assert [(c.chunk_id, c.rank) for c in same] == [(c.chunk_id, c.rank) for c in plain]
            # (qdrant-client local mode rounds a score differently when vectors come back with it)
            assert [c.score for c in same] == pytest.approx([c.score for c in plain], abs=1e-6)


class FavourAudit:
    """A double of the Reranker seam (no cross-encoder runs here): the audit passage first, the
    other passages about access next, the rest far behind."""

    model_version = "fake-reranker@1"

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        scores = [1.0 if "audit" in t else 0.8 if "access" in t else 0.1 for t in texts]
        return sorted((RerankResult(index=i, score=s) for i, s in enumerate(scores)), key=lambda r: -r.score)


def test_mmr_reorders_the_reranked_candidates_and_lambda_1_keeps_them(app: Application) -> None:
    app.answering.retriever.reranker = FavourAudit()
    reranked = ranked(app, "hybrid", None)
    assert reranked[:3] == ["audit", "policy", "reworded"] and ranked(app, "hybrid", 1.0) == reranked
    diverse = ranked(app, "hybrid", 0.5)
    assert diverse[:2] == ["audit", "policy"] and "reworded" not in diverse[:3], diverse


def test_lineage_records_the_mmr_lambda(app: Application) -> None:
    from sqlalchemy import select

    from lineage import parse, validate_event
    from lineage.tables import outbox
    from services.answering import AnswerRequest

    outcome = app.answering.answer(AnswerRequest(query=QUESTION, k=3, search_filter=FLT, endpoint="/v1/query",
                                                 mmr=0.5))
    with app.components.engine.connect() as conn:
        payload = conn.execute(select(outbox.c.payload).where(outbox.c.event_id == outcome.payload["answer_id"]))
        event = parse(payload.scalar_one())
    validate_event(event)
    retrieval = event.get_data()["retrieval"]
    assert retrieval["mmr"] == 0.5 and retrieval["candidates"] >= 50  # MMR chooses among more candidates
    assert "mmr" not in app.answering.retrieve_with_params(QUESTION, 3, FLT)[2]  # off: the shape is unchanged
    with pytest.raises(InvalidInput, match="mmr"):
        app.answering.retrieve(QUESTION, 3, FLT, mmr=1.5)


def test_the_configured_default_applies_when_a_request_names_none(make_components: Any) -> None:
    application = Application(make_components(retrieval={"mmr": 0.5}))
    for name, text in DOCS.items():
        application.ingestion.ingest_document(SourceDocument(
            source_uri=f"mem://{name}.md", data=text.encode(), document_id=name, media_type="text/markdown"))
    assert ranked(application, "dense", None)[:2] == ["policy", "audit"]
    assert ranked(application, "dense", 1.0)[:2] == ["policy", "reworded"]  # a request may turn it off


def test_mmr_order_is_the_textbook_greedy_choice() -> None:
    vectors = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    assert mmr_order([1.0, 0.95, 0.6], vectors, 1.0) == [0, 1, 2]
    assert mmr_order([1.0, 0.95, 0.6], vectors, 0.5) == [0, 2, 1]  # 0.5*.95 - 0.5*.99 < 0.5*.6 - 0
    assert mmr_order([1.0, 1.0, 1.0], np.zeros((3, 2)), 0.0) == [0, 1, 2]  # ties keep the order
    assert mmr_order([], np.zeros((0, 2)), 0.5) == []
    with pytest.raises(ValueError, match="lambda"):
        mmr_order([1.0], vectors[:1], 1.5)


def test_relevance_is_relative_to_the_best_and_never_rises() -> None:
    assert relevance([5.0, 2.5, 0.0]) == [1.0, 0.5, 0.0]
    assert relevance([0.8, -0.1]) == [1.0, 0.0]  # a negative cosine is no relevance
    assert relevance([0.5, 0.6, 0.25]) == [1.0, 1.0, 0.5]  # out of order: capped by the one above
    assert relevance([-1.0, -2.0, -3.0]) == [1.0, 0.5, 0.0]  # all negative (raw logits): min-max
