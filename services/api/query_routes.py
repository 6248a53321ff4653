"""``/v1/retrieve`` and ``/v1/query``: ranked chunks, and grounded answers with citations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from services.answering import AnswerRequest
from services.api.deps import Caller, require_role
from services.api.models import QueryRequest, QueryResponse, RetrieveRequest, RetrieveResponse
from services.api.runtime import Runtime, get_runtime
from services.api.streaming import AnswerEventStream

router = APIRouter(prefix="/v1", tags=["query"])
Reader = Annotated[Caller, Depends(require_role("reader"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.post("/retrieve", response_model=RetrieveResponse)
def retrieve(body: RetrieveRequest, caller: Reader, rt: RuntimeDep) -> dict[str, Any]:
    chunks, timings = rt.answers.retrieve(body.query, body.k, body.filters.to_search_filter(caller), mode=body.mode,
                                          group_by=body.group_by, mmr=body.mmr)
    rt.metrics.embedding_requests.labels("query").inc()
    for stage in ("embed", "search"):
        rt.metrics.retrieval.labels(stage).observe(timings[f"{stage}_ms"] / 1000)
    return {"chunks": [c.model_dump() for c in chunks], "timings": {k: round(v, 3) for k, v in timings.items()}}


@router.post("/query", response_model=QueryResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream=true"}})
def query(body: QueryRequest, caller: Reader, rt: RuntimeDep, request: Request,
          idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    req = AnswerRequest(
        query=body.query, k=body.k, search_filter=body.filters.to_search_filter(caller), endpoint="/v1/query",
        request_id=request.state.request_id, idempotency_key=idempotency_key,
        traceparent=request.state.traceparent, mode=body.mode, group_by=body.group_by, mmr=body.mmr,
    )
    if body.stream:
        stream = rt.open_stream(req)  # before the response: a refusal is a problem, not an empty 200
        return AnswerEventStream(stream, _sse(stream))
    return rt.answer(req).payload


def _sse(events: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
