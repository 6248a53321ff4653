"""Generators: the extractive default on real text, and the OpenAI-compatible chat client
(the real ``openai`` SDK) against a fake chat endpoint served by httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest

from retrieval.generation import ExtractiveGenerator, OpenAIChatGenerator
from retrieval.prompts import load_template
from schemas.errors import TransientError
from schemas.retrieval import Generation, RetrievedChunk


def chunk(rank: int, text: str, score: float = 0.6) -> RetrievedChunk:
    return RetrievedChunk(chunk_id=f"c{rank}", document_id=f"d{rank}", document_version="v", source_uri=f"doc{rank}",
                          rank=rank, score=score, text=text)


CHUNKS = [
    chunk(1, "Incident Response Runbook\n1. Scope\nThis runbook describes how the on-call engineer responds. "
             "Severity 1 incidents must be acknowledged within 15 minutes and mitigated within 4 hours."),
    chunk(2, "Post-incident review. Within five working days, write a blameless review.", 0.4),
]


def test_extractive_quotes_and_cites_only_retrieved_text() -> None:
    result = ExtractiveGenerator().generate("How fast must severity 1 incidents be acknowledged?", CHUNKS, [])
    expected = "Severity 1 incidents must be acknowledged within 15 minutes and mitigated within 4 hours. [1]"
    assert result.text == expected
    assert result.cited_ranks == [1]
    assert result.quotes[1] in CHUNKS[0].text


def test_extractive_stream_ends_with_the_same_generation() -> None:
    gen = ExtractiveGenerator(max_sentences=2)
    items = list(gen.stream("incident review days", CHUNKS, []))
    final = items[-1]
    assert isinstance(final, Generation)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == final.text


class FakeOpenAIChat:
    """Plays the remote OpenAI chat API: records requests, answers with canned completions."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict] = []
        self.statuses = statuses or []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.statuses:
            return httpx.Response(self.statuses.pop(0), json={"error": {"message": "nope", "type": "x"}})
        text = "Acknowledge within 15 minutes [1]; see also [7]."
        usage = {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
        if not body.get("stream"):
            return httpx.Response(200, json={
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage})
        pieces = [text[:20], text[20:]]
        events = [{"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        events.append({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                       "choices": [], "usage": usage})
        stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, content=stream.encode(), headers={"content-type": "text/event-stream"})


def make_generator(fake: FakeOpenAIChat, retries: int = 0) -> OpenAIChatGenerator:
    return OpenAIChatGenerator("gpt-test", "sk-test", "http://fake/v1", max_retries=retries,
                               http_client=httpx.Client(transport=httpx.MockTransport(fake)))


def test_openai_chat_generator_sends_the_rendered_template() -> None:
    fake = FakeOpenAIChat()
    messages = load_template().render("How fast?", CHUNKS)
    result = make_generator(fake).generate("How fast?", CHUNKS, messages)
    assert fake.requests[0]["messages"] == messages
    assert result.cited_ranks == [1]  # [7] names no retrieved source and is dropped
    assert (result.prompt_tokens, result.completion_tokens) == (50, 9)
    assert result.model_version == "openai-chat:gpt-test"


def test_openai_chat_generator_streams() -> None:
    items = list(make_generator(FakeOpenAIChat()).stream("q", CHUNKS, [{"role": "user", "content": "q"}]))
    final = items[-1]
    assert isinstance(final, Generation) and final.completion_tokens == 9
    assert "".join(i for i in items if isinstance(i, str)) == final.text


def test_openai_chat_generator_errors_are_classified() -> None:
    with pytest.raises(TransientError):
        make_generator(FakeOpenAIChat([503])).generate("q", CHUNKS, [{"role": "user", "content": "q"}])
    fake = FakeOpenAIChat([429])
    assert make_generator(fake, retries=1).generate("q", CHUNKS, [{"role": "user", "content": "q"}]).text
    assert len(fake.requests) == 2  # the SDK retried the 429 once


def test_extractive_without_a_sentence_to_quote_abstains() -> None:
    figures = [chunk(1, "Q3 12. Q4 14."), chunk(2, "Lot C. Gate 4.")]  # no sentence of 12 characters
    for result in (ExtractiveGenerator().generate("lot c gate", figures, []),
                   list(ExtractiveGenerator().stream("lot c gate", figures, []))[-1]):
        assert isinstance(result, Generation)
        assert result.no_answer and result.text == "" and result.cited_ranks == []
    assert list(ExtractiveGenerator().stream("lot c gate", figures, []))[:-1] == []  # not even an empty delta
