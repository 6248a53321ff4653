"""Request and response bodies of the query API (validated by pydantic, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.retrieval import RetrievedChunk, SearchFilter
from services.api.deps import Caller


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: Text a client sends that is stored (queries, ids): NUL is refused, because PostgreSQL
#: cannot store it and no real question or id contains one.
CleanStr = Annotated[str, AfterValidator(_no_nul)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] | None = Field(None, max_length=1000)
    source_uris: list[str] | None = Field(None, max_length=1000)
    media_types: list[str] | None = Field(None, max_length=100)
    access_tags: list[str] | None = Field(None, max_length=100, description="narrow to these tags")

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


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: CleanStr = Field(min_length=1)
    k: int = Field(5, ge=1)
    filters: Filters = Filters()


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


class QueryResponse(BaseModel):
    answer_id: str
    answer: str
    citations: list[Citation]
    usage: dict[str, int]
    timings: dict[str, float]
    model: str
    no_answer: bool
