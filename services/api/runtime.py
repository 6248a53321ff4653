"""What a running API process holds: the application's use cases and the HTTP metrics."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from services.answering import AnswerOutcome, AnswerRequest, AnswerStream
from services.api.metrics import Metrics
from services.application import Application


class Runtime:
    def __init__(self, application: Application) -> None:
        self.settings = application.settings
        self.metrics = Metrics()
        self.ingestion = application.ingestion
        self.answers = application.answering
        self.audit = application.audit
        self.maintenance = application.maintenance
        self.metrics.watch_outbox(self.maintenance.outbox_backlog)
        self._application = application

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
        self._application.close()


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]
