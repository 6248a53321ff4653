"""Builders of realistic AnswerRecords for the lineage tests and the crash-test writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import ids
from schemas.lineage import AnswerRecord, RetrievedRef, TokenUsage

TEMPLATE_SHA = "a" * 64


def doc_version(document_id: str, n: int = 1) -> str:
    return ids.document_version(f"{document_id} v{n}".encode())


def make_answer(tenant: str = "acme", *, documents: tuple[str, ...] = ("doc-a", "doc-b"), sources: int = 5,
                created_at: datetime | None = None, version: int = 1, answer_id: str | None = None,
                **fields: Any) -> AnswerRecord:
    """An answer whose ``sources`` chunks come round-robin from ``documents``; rank 1 is cited."""
    created = created_at or datetime.now(UTC)
    refs = []
    for rank in range(1, sources + 1):
        doc = documents[(rank - 1) % len(documents)]
        ver = doc_version(doc, version)
        refs.append(RetrievedRef(chunk_id=ids.chunk_id("t", doc, ver, "fp", rank), document_id=doc,
                                 document_version=ver, source_uri=f"file:///corpus/{doc}.md", rank=rank,
                                 score=1.0 - rank / 10, cited=rank == 1))
    values: dict[str, Any] = {
        "answer_id": answer_id or ids.uuid7(), "tenant": tenant, "created_at": created, "status": "complete",
        "endpoint": "/v1/query", "request_id": "req-1", "query": "How fast must a sev-1 incident be acknowledged?",
        "answer_text": "Within 15 minutes [1].", "retrieved": refs, "embedding_model_version": "minilm-l6-v2-int8",
        "prompt_template_version": "grounded_answer.v1", "prompt_template_sha256": TEMPLATE_SHA,
        "llm_model_version": "extractive-1", "retrieval_timestamp": created - timedelta(milliseconds=40),
        "collection": "minilm_384_fp", "filters": {"access_tags": ["ops"]},
        "usage": TokenUsage(prompt_tokens=300, completion_tokens=12, total_tokens=312),
        "timings_ms": {"embed": 3.5, "search": 2.1, "generate": 30.0}, "traceparent": None,
        "response": {"answer": "Within 15 minutes [1]."},
    }
    return AnswerRecord(**(values | fields))
