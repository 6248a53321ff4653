"""What a running API process holds: components, the answer service, metrics, jobs."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Request

from ingest.pipeline import DocumentOutcome
from retrieval.prompts import load_template
from retrieval.retriever import Retriever
from schemas.documents import SourceDocument
from services.answering import AnswerOutcome, AnswerRequest, AnswerService, AnswerStream
from services.api.jobs import JobRunner
from services.api.metrics import Metrics
from services.wiring import Components, build_generator


class InvalidField(Exception):
    """A request field breaks a configured limit (answered as a 422 problem naming the field)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class Runtime:
    def __init__(self, components: Components) -> None:
        self.components = components
        self.settings = components.settings
        self.metrics = Metrics()
        gen = self.settings.generation
        components.index.ensure_collection(components.collection, components.embedder.dimensions)
        components.index.ensure_collection(components.serving_collection, components.embedder.dimensions)
        retriever = Retriever(components.embedder, components.index, components.serving_collection)
        self.answers = AnswerService(retriever, build_generator(self.settings), load_template(gen.template),
                                     components.lineage, gen.min_score)
        self.jobs = JobRunner(components.engine, self.settings.api.job_heartbeat_s)
        self.jobs.start()
        self._pipeline = components.pipeline()
        self._ingest_lock = threading.Lock()

    def ingest(self, source: SourceDocument) -> DocumentOutcome:
        """One document at a time: the embedded index has one writer, embedding uses every core."""
        with self._ingest_lock:
            return self._pipeline.ingest_one(source)

    def delete(self, tenant: str, document_id: str, reader_tags: tuple[str, ...] | None = None) -> bool:
        """A document the caller may not see is, to it, a document that does not exist."""
        if self.components.registry.get(tenant, document_id, reader_tags) is None:
            return False
        with self._ingest_lock:
            return self._pipeline.delete(tenant, document_id, also_from=(self.components.serving_collection,))

    def check_query(self, query: str, k: int) -> None:
        api = self.settings.api
        if len(query) > api.max_query_chars:
            raise InvalidField("query", f"{len(query)} characters exceeds the limit of {api.max_query_chars}")
        if k > api.max_k:
            raise InvalidField("k", f"{k} exceeds the limit of {api.max_k}")

    def stores_query_text(self, tenant: str) -> bool:
        lineage = self.settings.lineage
        return lineage.store_query_text and tenant not in lineage.tenants_hashing_queries

    def answer(self, req: AnswerRequest) -> AnswerOutcome:
        outcome = self.answers.answer(req)
        if not outcome.replayed:
            self.metrics.observe_answer(req.endpoint, outcome.status, outcome.timings_ms, outcome.payload["model"])
        return outcome

    def open_stream(self, req: AnswerRequest) -> AnswerStream:
        """Retrieval done and rows committed (``streaming``) before the response starts."""
        def observe(done: dict[str, Any]) -> None:
            self.metrics.observe_answer(req.endpoint, done["status"], done["timings"], done["model"])

        return self.answers.open_stream(req, on_done=observe)

    def close(self) -> None:
        self.jobs.close()


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]
