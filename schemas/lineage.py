"""What an answer's lineage records: built on the answer path, persisted by a LineageSink.

Field names follow DESIGN.md ("the lineage CloudEvent"); ``retrieved[]`` items are
{chunk_id, document_id, document_version, source_uri, rank, score} plus ``cited``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ANSWER_EVENT_TYPE = "ai.ragline.answer.generated.v1"
DOCUMENT_INDEXED_EVENT_TYPE = "ai.ragline.document.indexed.v1"
DOCUMENT_DELETED_EVENT_TYPE = "ai.ragline.document.deleted.v1"

AnswerStatus = Literal["complete", "no_answer", "streaming", "incomplete"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RetrievedRef(_Frozen):
    chunk_id: str
    document_id: str
    document_version: str
    source_uri: str
    rank: int
    score: float
    cited: bool = False


class TokenUsage(_Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AnswerRecord(_Frozen):
    """Everything lineage needs about one answer, in one immutable value."""

    answer_id: str
    tenant: str
    created_at: datetime
    status: AnswerStatus
    endpoint: str  # /v1/query | /v1/chat/completions
    request_id: str | None = None
    query: str
    store_query_text: bool = True  # False: only the query's SHA-256 is persisted
    answer_text: str = ""
    retrieved: list[RetrievedRef] = Field(default_factory=list)
    embedding_model_version: str
    prompt_template_version: str
    prompt_template_sha256: str
    llm_model_version: str
    retrieval_timestamp: datetime
    collection: str
    filters: dict[str, Any] = Field(default_factory=dict)
    usage: TokenUsage = TokenUsage()
    timings_ms: dict[str, float] = Field(default_factory=dict)
    traceparent: str | None = None
    response: dict[str, Any] | None = None  # the API response body, replayed for a retried Idempotency-Key
    request_fingerprint: str | None = None  # SHA-256 of the request behind an Idempotency-Key (a reuse must match)
    retrieval: dict[str, Any] | None = None  # mode, fusion parameters, reranker: what ranked the chunks


class DocumentChange(_Frozen):
    """A document version entering or leaving retrieval; lineage turns it into an
    ``ai.ragline.document.indexed.v1`` / ``deleted.v1`` event, so the event log can say
    what was answerable when, next to the answers that used it."""

    kind: Literal["indexed", "deleted"]
    tenant: str
    document_id: str
    document_version: str
    source_uri: str
    collection: str
    occurred_at: datetime
    pipeline_fingerprint: str = ""
    chunk_ids: list[str] = Field(default_factory=list)
    media_type: str | None = None
    forgotten: bool = False  # deleted and its archived chunk text erased (an erasure request)
    pii_redacted: dict[str, int] | None = None  # indexed: values redacted per PII entity type (never values)
    receipt: dict[str, Any] | None = None  # an erasure's receipt: what was erased where, when, by whom
