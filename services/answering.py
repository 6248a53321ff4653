"""The answer path: retrieve -> prompt template -> generator -> lineage -> response.

Shared by ``/v1/query`` and ``/v1/chat/completions``. Lineage is not optional: the
response is built only after the LineageSink committed, so a client never receives an
answer whose lineage was not written.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lineage import DuplicateAnswerError
from retrieval.prompts import PromptTemplate
from retrieval.retriever import Retriever
from schemas import ids
from schemas.errors import RaglineError, TerminalError
from schemas.lineage import AnswerRecord, AnswerStatus, RetrievedRef, TokenUsage
from schemas.protocols import Generator, LineageSink, Redactor
from schemas.retrieval import Generation, GroupBy, RetrievalMode, RetrievedChunk, SearchFilter
from services.errors import InvalidInput

QUOTE_CHARS = 300
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerRequest:
    query: str  # what the user asked (recorded)
    k: int
    search_filter: SearchFilter
    endpoint: str
    retrieval_query: str | None = None  # condensed conversation for chat; defaults to query
    request_id: str | None = None
    idempotency_key: str | None = None
    traceparent: str | None = None
    conversation: tuple[tuple[str, str], ...] = ()  # chat: every message as (role, text)
    mode: RetrievalMode | None = None  # dense | sparse | hybrid; None: the configured default
    group_by: GroupBy | None = None
    mmr: float | None = None  # MMR λ in [0, 1]; None: the configured default (off unless set)

    def fingerprint(self) -> str:
        """SHA-256 of what determines the answer: endpoint, question (or conversation), k and the
        effective search filter (the request's filters and the caller's tenant and tags). The
        stream flag, request id and trace context do not change the answer and are left out."""
        shape: dict[str, object] = {
            "endpoint": self.endpoint, "query": self.query, "retrieval_query": self.retrieval_query,
            "conversation": self.conversation, "k": self.k, "filter": self.search_filter.model_dump(mode="json"),
        }
        # Only when asked for: fingerprints of requests recorded before these options stay the same.
        shape |= {key: value for key, value in (("mode", self.mode), ("group_by", self.group_by)) if value}
        if self.mmr is not None:
            shape["mmr"] = self.mmr
        return ids.text_hash(json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


class IdempotencyKeyReusedError(TerminalError):
    """An Idempotency-Key came back with a different request (answered 422, never the other answer)."""

    def __init__(self, answer_id: str) -> None:
        super().__init__(f"Idempotency-Key: this key was already used for a different request (answer {answer_id}); "
                         "use a new key for a new request")
        self.answer_id = answer_id


@dataclass(frozen=True)
class _Gathered:
    """What retrieval handed the answer path: the chunks, those that are evidence, and what shaped them."""

    chunks: list[RetrievedChunk]
    evidence: list[RetrievedChunk]
    timings: dict[str, float]
    retrieved_at: datetime
    params: dict[str, Any]


@dataclass
class AnswerOutcome:
    """The response payload (shared by both endpoints) and what produced it."""

    payload: dict[str, Any]
    status: AnswerStatus
    replayed: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)


class AnswerStream:
    """A streamed answer whose rows are already committed: iterate it for its events;
    ``close()`` ends it early (the generator's upstream stream is closed and the rows are
    finalized ``incomplete``). One thread at a time pulls events; ``close()`` may come from
    another (the server noticing a disconnect): it waits for an event in flight, then closes."""

    def __init__(self, answer_id: str, events: abc.Generator[tuple[str, dict[str, Any]]],
                 replayed: bool = False) -> None:
        self.answer_id = answer_id
        self.replayed = replayed
        self._events = events
        self._lock = threading.Lock()
        # Started at once: a generator closed before its first event would skip its ``finally``.
        self._first: tuple[str, dict[str, Any]] | None = next(events)

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            first, self._first = self._first, None
            return first if first is not None else next(self._events)

    def close(self) -> None:
        """Idempotent; a stream already finished is left as it is."""
        with self._lock:
            try:
                self._events.close()
            except RaglineError as exc:  # the rows stay ``streaming``; the relay finalizes them once stale
                log.warning("answer %s: finalizing the stream failed: %s", self.answer_id, exc)


def _replayed(answer_id: str, payload: dict[str, Any]) -> abc.Generator[tuple[str, dict[str, Any]]]:
    yield "start", {"answer_id": answer_id}
    yield "delta", {"text": payload["answer"]}
    yield "done", payload


@dataclass(frozen=True)
class AnswerPolicy:
    """The rules every entry point gets alike: query limits, the evidence threshold,
    whether a tenant's query text may be stored (else only its SHA-256), and whether the
    PII in what lineage stores of a request (its query, the answer text) is redacted first."""

    min_score: float
    max_query_chars: int | None = None
    max_k: int | None = None
    store_query_text: bool = True
    tenants_hashing_queries: frozenset[str] = frozenset()
    redactor: Redactor | None = None  # None: lineage stores queries as asked
    redact_queries: bool = True
    tenants_raw_queries: frozenset[str] = frozenset()  # tenants whose policy keeps query text as asked
    tenants_redacting_queries: frozenset[str] = frozenset()  # ... and those redacting it when the default does not

    def stores_query_text(self, tenant: str) -> bool:
        return self.store_query_text and tenant not in self.tenants_hashing_queries

    def redacts_queries(self, tenant: str) -> bool:
        if self.redactor is None or tenant in self.tenants_raw_queries:
            return False
        return self.redact_queries or tenant in self.tenants_redacting_queries

    def for_lineage(self, tenant: str, query: str, answer_text: str,
                    response: dict[str, Any] | None) -> tuple[str, str, dict[str, Any] | None]:
        """What lineage keeps of a request: the query, the answer text and the stored response
        with PII redacted under the tenant's policy (an answer may repeat the question's PII).
        Retrieval and generation used the original query; the client got the original answer."""
        if self.redactor is None or not self.redacts_queries(tenant):
            return query, answer_text, response
        redact = self.redactor.redact
        answer = redact(answer_text, tenant).text
        if response is not None:
            response = dict(response)
            if isinstance(response.get("answer"), str):
                response["answer"] = answer if response["answer"] == answer_text else redact(
                    response["answer"], tenant).text
            if isinstance(response.get("citations"), list):
                response["citations"] = [{**c, "quote": redact(c["quote"], tenant).text}
                                         if isinstance(c, dict) and isinstance(c.get("quote"), str) else c
                                         for c in response["citations"]]
        return redact(query, tenant).text, answer, response

    def check(self, query: str, k: int) -> None:
        if self.max_query_chars is not None and len(query) > self.max_query_chars:
            raise InvalidInput("query", f"{len(query)} characters exceeds the limit of {self.max_query_chars}")
        if self.max_k is not None and k > self.max_k:
            raise InvalidInput("k", f"{k} exceeds the limit of {self.max_k}")


class AnswerService:
    """The answering use case: retrieval, grounded answers (whole or streamed), and their lineage."""

    def __init__(self, retriever: Retriever, generator: Generator, template: PromptTemplate,
                 lineage: LineageSink, policy: AnswerPolicy) -> None:
        self.retriever = retriever
        self.generator = generator
        self.template = template
        self.lineage = lineage
        self.policy = policy
        self.min_score = policy.min_score

    def retrieve(self, query: str, k: int, flt: SearchFilter, *, checked: bool = True,
                 mode: RetrievalMode | None = None, group_by: GroupBy | None = None,
                 rerank: bool = True, mmr: float | None = None) -> tuple[list[RetrievedChunk], dict[str, float]]:
        """Ranked chunks; ``checked=False`` lifts the request limits (operator search, eval)."""
        chunks, timings, _ = self.retrieve_with_params(query, k, flt, checked=checked, mode=mode,
                                                       group_by=group_by, rerank=rerank, mmr=mmr)
        return chunks, timings

    def retrieve_with_params(self, query: str, k: int, flt: SearchFilter, *, checked: bool = True,
                             mode: RetrievalMode | None = None, group_by: GroupBy | None = None,
                             rerank: bool = True, mmr: float | None = None,
                             ) -> tuple[list[RetrievedChunk], dict[str, float], dict[str, Any]]:
        """Also what shaped the ranking (mode, fusion, reranker, MMR): what lineage records."""
        if mmr is not None and not 0.0 <= mmr <= 1.0:
            raise InvalidInput("mmr", f"{mmr} is not in [0, 1] (1 keeps the ranking; lower favours diversity)")
        if checked:
            self.policy.check(query, k)
        result = self.retriever.run(query, k, flt, mode=mode, group_by=group_by, rerank=rerank, mmr=mmr)
        t = result.timings
        timings = {"embed_ms": t.embed_ms, "search_ms": t.search_ms}
        if self.retriever.reranker is not None and rerank:
            timings["rerank_ms"] = t.rerank_ms
        return result.chunks, timings, result.params

    @property
    def has_reranker(self) -> bool:
        return self.retriever.reranker is not None

    def answer(self, req: AnswerRequest) -> AnswerOutcome:
        self.policy.check(req.retrieval_query or req.query, req.k)
        started = time.perf_counter()
        answer_id = ids.answer_id(req.search_filter.tenant, req.idempotency_key)
        replay = self._replay(req, answer_id)
        if replay:
            return replay
        got = self._gather(req)
        chunks, evidence, timings = got.chunks, got.evidence, got.timings
        t0 = time.perf_counter()
        generation = self._generate(req, evidence)
        timings["generate_ms"] = (time.perf_counter() - t0) * 1000
        status: AnswerStatus = "no_answer" if generation.no_answer else "complete"
        payload = self._payload(answer_id, generation, chunks, timings)
        record = self._record(req, answer_id, status, generation, got, payload)
        t1 = time.perf_counter()
        try:
            self.lineage.record_answer(record)
        except DuplicateAnswerError:
            # A retry with the same Idempotency-Key raced this request and committed first.
            replay = self._replay(req, answer_id)
            if replay is None:
                raise
            return replay
        timings["lineage_ms"] = (time.perf_counter() - t1) * 1000
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        payload["timings"] = {k: round(v, 3) for k, v in timings.items()}
        return AnswerOutcome(payload, status, timings_ms=timings)

    def open_stream(self, req: AnswerRequest, on_done: Callable[[dict[str, Any]], None] | None = None) -> AnswerStream:
        """Everything that can refuse the request happens here, before a byte is sent: the
        Idempotency-Key check, retrieval, and the commit of the rows (status ``streaming``).
        The stream then yields ("start", {"answer_id"}), ("delta", {"text"})…, ("done", payload);
        one ended early is finalized as ``incomplete``. ``on_done`` sees a new answer's payload."""
        self.policy.check(req.retrieval_query or req.query, req.k)
        answer_id = ids.answer_id(req.search_filter.tenant, req.idempotency_key)
        replay = self._replay(req, answer_id)
        if replay is None:
            got = self._gather(req)
            pending = Generation(text="", model_version=self.generator.model_version)
            try:
                self.lineage.begin_stream(self._record(req, answer_id, "streaming", pending, got, None))
            except DuplicateAnswerError:
                replay = self._replay(req, answer_id)  # a retry with the same key committed first
                if replay is None:
                    raise
            else:
                return AnswerStream(answer_id, self._stream(req, answer_id, got, on_done))
        return AnswerStream(answer_id, _replayed(answer_id, replay.payload), replayed=True)

    def _stream(self, req: AnswerRequest, answer_id: str, got: _Gathered,
                on_done: Callable[[dict[str, Any]], None] | None) -> abc.Generator[tuple[str, dict[str, Any]]]:
        """The events of a begun stream; its ``finally`` finalizes the rows however it ends
        (exhausted, an error, or closed: then the generator's own stream is closed first)."""
        parts: list[str] = []
        final: Generation | None = None
        chunks, timings = got.chunks, got.timings
        generation = self._generate_stream(req, got.evidence)
        t0 = time.perf_counter()
        try:
            yield "start", {"answer_id": answer_id}
            t0 = time.perf_counter()
            for item in generation:
                if isinstance(item, Generation):
                    final = item
                else:
                    parts.append(item)
                    yield "delta", {"text": item}
            if final is not None and not final.text.strip():
                final = self._no_answer(final)  # an empty answer is an abstention, said as one
                parts.append(final.text)
                yield "delta", {"text": final.text}
        finally:
            generation.close()  # ended early: the generator's upstream stream is closed before the rows
            timings["generate_ms"] = (time.perf_counter() - t0) * 1000
            result = final or Generation(text="".join(parts), model_version=self.generator.model_version)
            status: AnswerStatus = ("no_answer" if result.no_answer else "complete") if final else "incomplete"
            payload = self._payload(answer_id, result, chunks, timings)
            payload["status"] = status
            self.lineage.finish_stream(self._record(req, answer_id, status, result, got, payload))
        if on_done is not None:
            on_done(payload)
        yield "done", payload

    def _replay(self, req: AnswerRequest, answer_id: str) -> AnswerOutcome | None:
        """The recorded answer of a retried Idempotency-Key; a different request under the same
        key is refused (answers recorded before fingerprints existed have none and replay)."""
        if not req.idempotency_key:
            return None
        existing = self.lineage.find_answer(req.search_filter.tenant, answer_id)
        if existing is None:
            return None
        if existing.request_fingerprint is not None and existing.request_fingerprint != req.fingerprint():
            raise IdempotencyKeyReusedError(answer_id)
        if existing.response is None:
            return None
        return AnswerOutcome(dict(existing.response), existing.status, replayed=True)

    def _gather(self, req: AnswerRequest) -> _Gathered:
        retrieved_at = datetime.now(UTC)
        chunks, timings, params = self.retrieve_with_params(
            req.retrieval_query or req.query, req.k, req.search_filter, checked=False, mode=req.mode,
            group_by=req.group_by, mmr=req.mmr)
        evidence = [c for c in chunks if c.score >= self.min_score]
        return _Gathered(chunks, evidence, timings, retrieved_at, params)

    def _generate(self, req: AnswerRequest, evidence: list[RetrievedChunk]) -> Generation:
        if not evidence:
            return self._no_answer()
        generation = self.generator.generate(req.query, evidence, self.template.render(req.query, evidence))
        return generation if generation.text.strip() else self._no_answer(generation)

    def _generate_stream(self, req: AnswerRequest,
                         evidence: list[RetrievedChunk]) -> abc.Generator[str | Generation]:
        if not evidence:
            result = self._no_answer()
            yield result.text
            yield result
            return
        yield from self.generator.stream(req.query, evidence, self.template.render(req.query, evidence))

    def _no_answer(self, empty: Generation | None = None) -> Generation:
        """The abstention: no evidence above the threshold, or a generator that produced no
        text from it (``empty``, whose model and token usage are kept)."""
        if empty is None:
            text = ("I don't know: none of the indexed documents you can read matches this question closely "
                    f"enough (retrieval score threshold {self.min_score:g}).")
        else:
            text = "I don't know: the documents retrieved for this question contain no passage that answers it."
        return Generation(
            text=text, model_version=empty.model_version if empty else self.generator.model_version, no_answer=True,
            prompt_tokens=empty.prompt_tokens if empty else 0,
            completion_tokens=empty.completion_tokens if empty else 0,
        )

    @staticmethod
    def _payload(answer_id: str, generation: Generation, chunks: list[RetrievedChunk],
                 timings: dict[str, float]) -> dict[str, Any]:
        by_rank = {c.rank: c for c in chunks}
        citations = [
            {"chunk_id": c.chunk_id, "document_id": c.document_id, "source_uri": c.source_uri,
             "page_start": c.page_start, "page_end": c.page_end, "rank": c.rank,
             "quote": generation.quotes.get(rank) or " ".join(c.text.split())[:QUOTE_CHARS], "also_in": c.also_in}
            for rank in generation.cited_ranks if (c := by_rank.get(rank))
        ]
        usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                 "total_tokens": generation.prompt_tokens + generation.completion_tokens}
        return {"answer_id": answer_id, "answer": generation.text, "citations": citations, "usage": usage,
                "model": generation.model_version, "no_answer": generation.no_answer,
                "timings": {k: round(v, 3) for k, v in timings.items()}}

    def _record(self, req: AnswerRequest, answer_id: str, status: AnswerStatus, generation: Generation,
                got: _Gathered, payload: dict[str, Any] | None) -> AnswerRecord:
        chunks, timings, retrieved_at = got.chunks, got.timings, got.retrieved_at
        cited = set(generation.cited_ranks)
        flt = req.search_filter
        query, answer_text, response = self.policy.for_lineage(flt.tenant, req.query, generation.text, payload)
        return AnswerRecord(
            answer_id=answer_id, tenant=flt.tenant, created_at=datetime.now(UTC), status=status,
            endpoint=req.endpoint, request_id=req.request_id, query=query,
            store_query_text=self.policy.stores_query_text(flt.tenant), answer_text=answer_text,
            retrieved=[RetrievedRef(chunk_id=c.chunk_id, document_id=c.document_id,
                                    document_version=c.document_version, source_uri=c.source_uri, rank=c.rank,
                                    score=c.score, cited=c.rank in cited) for c in chunks],
            embedding_model_version=self.retriever.embedder.model_version,
            prompt_template_version=self.template.version, prompt_template_sha256=self.template.sha256,
            llm_model_version=generation.model_version, retrieval_timestamp=retrieved_at,
            collection=self.retriever.collection,
            filters={**flt.model_dump(exclude_none=True), "min_score": self.min_score},
            usage=TokenUsage(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                             total_tokens=generation.prompt_tokens + generation.completion_tokens),
            timings_ms=dict(timings), traceparent=req.traceparent, response=response,
            request_fingerprint=req.fingerprint() if req.idempotency_key else None, retrieval=got.params,
        )
