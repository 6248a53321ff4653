"""Request and response bodies of the query API (validated by pydantic, documented in OpenAPI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.retrieval import RetrievedChunk, SearchFilter
from services.api.deps import Caller


def clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (a lone surrogate is not)") from exc
    return value


#: Text a client sends that is stored, embedded or matched (queries, ids, tags): NUL and
#: lone surrogates are refused, because PostgreSQL, the tokenizer and Qdrant cannot take
#: them and no real question or id contains one.
CleanStr = Annotated[str, AfterValidator(clean_text)]


def _utc(value: datetime) -> datetime:
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is outside the range of dates that can be stored") from exc


#: A moment from a query string, in UTC (no zone means UTC); the calendar's edges with
#: an offset that would push them out of range are a 422, not a 500.
UtcMoment = Annotated[datetime, AfterValidator(_utc)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_ids: list[CleanStr] | None = Field(None, max_length=1000)
    source_uris: list[CleanStr] | None = Field(None, max_length=1000)
    media_types: list[CleanStr] | None = Field(None, max_length=100)
    access_tags: list[CleanStr] | None = Field(None, max_length=100, description="narrow to these tags")

    def to_search_filter(self, caller: Caller) -> SearchFilter:
        """The caller's tenant always; tags are the caller's, narrowed by the request."""
        tags = caller.access_tags
        if self.access_tags is not None:
            tags = tuple(t for t in self.access_tags if tags is None or t in tags)
        return SearchFilter(
            tenant=caller.tenant, access_tags=tags,
            document_ids=tuple(self.document_ids) if self.document_ids is not None else None,
            source_uris=tuple(self.source_uris) if self.source_uris is not None else None,
            media_types=tuple(self.media_types) if self.media_types is not None else None,
        )


MMR_DESCRIPTION = ("maximal marginal relevance λ: the candidates are re-ordered so that a passage much like one "
                   "already ranked moves down; 1 keeps the ranking, lower values favour diversity; default: the "
                   "server's RAGLINE_RETRIEVAL__MMR (off)")


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: CleanStr = Field(min_length=1)
    k: int = Field(5, ge=1)
    filters: Filters = Filters()
    mode: Literal["dense", "sparse", "hybrid"] | None = Field(
        None, description="dense embedding, lexical BM25 (sparse), or both fused (hybrid); default: the "
                          "server's RAGLINE_RETRIEVAL__MODE (hybrid)")
    group_by: Literal["document"] | None = Field(
        None, description="document: k documents, each with its best chunks (RAGLINE_RETRIEVAL__GROUP_SIZE)")
    mmr: float | None = Field(None, ge=0, le=1, description=MMR_DESCRIPTION)


class QueryRequest(RetrieveRequest):
    stream: bool = False


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunk]
    timings: dict[str, float]


class Citation(BaseModel):
    chunk_id: str
    document_id: str
    source_uri: str
    page_start: int | None
    page_end: int | None
    rank: int
    quote: str
    also_in: list[str] = Field(default_factory=list, description="other documents holding the same passage")


class QueryResponse(BaseModel):
    answer_id: str
    answer: str
    citations: list[Citation]
    usage: dict[str, int]
    timings: dict[str, float]
    model: str
    no_answer: bool
