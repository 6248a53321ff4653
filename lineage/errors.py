"""Lineage errors: library failures (SQLAlchemy, pyiceberg) are translated once, here in
``lineage``, into the ragline hierarchy, so callers decide retry vs. give-up by type."""

from __future__ import annotations

from schemas.errors import RaglineError, TerminalError, TransientError, driver_message


class LineageError(RaglineError):
    """Base of every lineage error."""


class LineageStoreError(LineageError, TransientError):
    """The relational store failed (connection, lock timeout): the answer must not be served."""


class LineageDataError(LineageError, TerminalError):
    """The store refused the data itself (a value too long, a forbidden byte): retrying can't help."""


def store_error(doing: str, exc: BaseException) -> LineageError:
    """Translate a database failure without its SQL text or parameters (which may hold a
    client's query or a document's text): the driver's first message line, typed so a
    data error is terminal (4xx) and anything else transient (503)."""
    orig = getattr(exc, "orig", None) or exc
    message = f"{doing}: {driver_message(exc)}"
    if any(cls.__name__ == "DataError" for cls in type(orig).__mro__):
        return LineageDataError(message)
    return LineageStoreError(message)


class DuplicateAnswerError(LineageError, TerminalError):
    """An answer with this id is already recorded (a retried Idempotency-Key raced the first)."""

    def __init__(self, answer_id: str) -> None:
        super().__init__(f"answer {answer_id} is already recorded")
        self.answer_id = answer_id


class AnswerStateError(LineageError, TerminalError):
    """A stream was finished that was never begun, or was already finished."""


class InvalidEventError(LineageError, TerminalError):
    """An event's data does not match its JSON Schema (a bug, never user input)."""


class LandingError(LineageError, TransientError):
    """Landing events in the lake failed (catalog or storage); the outbox keeps them pending."""


class InvalidCursorError(LineageError, TerminalError):
    """A pagination cursor this service did not hand out."""
