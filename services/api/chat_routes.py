"""``/v1/chat/completions``: the OpenAI Chat Completions shape, grounded in retrieval.

An unmodified ``openai`` client pointed at ragline's ``base_url`` gets a valid response
whose ``id`` carries the answer_id; citations travel in extra fields
(``citations``, ``answer_id``) that OpenAI clients ignore.

Conversation condensing (deterministic, documented): the question is the last user
message; the retrieval query is that message, prefixed by the previous user message
when the last one is a short follow-up (fewer than ``FOLLOW_UP_WORDS`` words, e.g.
"and for severity 2?"). Assistant turns are not used for retrieval: they are our own
earlier answers and would pull retrieval toward what was already said.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.answering import AnswerRequest
from services.api.deps import Caller, require_role
from services.api.models import MMR_DESCRIPTION, CleanStr, Filters, clean_text
from services.api.runtime import Runtime, get_runtime
from services.api.streaming import AnswerEventStream
from services.errors import InvalidInput

router = APIRouter(prefix="/v1", tags=["chat"])
FOLLOW_UP_WORDS = 12


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: CleanStr | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""

    @field_validator("content")
    @classmethod
    def _parts_without_nul(cls, value: object) -> object:
        if isinstance(value, list):
            for part in value:
                if isinstance(part, dict) and "text" in part:
                    clean_text(str(part["text"]))
        return value


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send fields we don't use (n, top_p, …)

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    k: int = Field(5, ge=1, description="ragline extension: chunks to retrieve")
    filters: Filters = Filters()
    mode: Literal["dense", "sparse", "hybrid"] | None = Field(
        None, description="ragline extension: retrieval mode (default: the server's, hybrid)")
    mmr: float | None = Field(None, ge=0, le=1, description=f"ragline extension: {MMR_DESCRIPTION}")


def condense(messages: list[ChatMessage]) -> tuple[str, str]:
    """(question, retrieval query) from the conversation; see the module docstring."""
    users = [m.text().strip() for m in messages if m.role == "user" and m.text().strip()]
    if not users:
        raise InvalidInput("messages", "the conversation has no user message")
    question = users[-1]
    if len(users) > 1 and len(question.split()) < FOLLOW_UP_WORDS:
        return question, f"{users[-2]} {question}"
    return question, question


@router.post("/chat/completions")
def chat_completions(body: ChatCompletionRequest, caller: Annotated[Caller, Depends(require_role("reader"))],
                     rt: Annotated[Runtime, Depends(get_runtime)], request: Request,
                     idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Any:
    question, retrieval_query = condense(body.messages)
    req = AnswerRequest(
        query=question, retrieval_query=retrieval_query, k=body.k,
        search_filter=body.filters.to_search_filter(caller), endpoint="/v1/chat/completions",
        request_id=request.state.request_id, idempotency_key=idempotency_key,
        traceparent=request.state.traceparent,
        conversation=tuple((m.role, m.text()) for m in body.messages), mode=body.mode, mmr=body.mmr,
    )
    created = int(time.time())
    if body.stream:
        stream = rt.open_stream(req)  # before the response: a refusal is a problem, not an empty 200
        return AnswerEventStream(stream, _chunks(stream, rt.answers.generator.model_version, created))
    payload = rt.answer(req).payload
    return {
        "id": f"chatcmpl-{payload['answer_id']}", "object": "chat.completion", "created": created,
        "model": payload["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": payload["answer"]},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": payload["usage"], "answer_id": payload["answer_id"], "citations": payload["citations"],
    }


def _chunks(events: Iterable[tuple[str, dict[str, Any]]], model: str, created: int) -> Iterator[str]:
    chunk_id = ""
    role_sent = False
    for name, data in events:
        if name == "start":
            chunk_id = f"chatcmpl-{data['answer_id']}"
        elif name == "delta":
            delta: dict[str, Any] = {"content": data["text"]}
            if not role_sent:
                delta["role"], role_sent = "assistant", True
            yield _sse({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        else:
            yield _sse({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": data["model"],
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": data["usage"], "answer_id": data["answer_id"], "citations": data["citations"]})
    yield "data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
