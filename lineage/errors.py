"""Lineage errors: library failures (SQLAlchemy, pyiceberg) are translated once, here in
``lineage``, into the ragline hierarchy, so callers decide retry vs. give-up by type."""

from __future__ import annotations

from schemas.errors import RaglineError, TerminalError, TransientError


class LineageError(RaglineError):
    """Base of every lineage error."""


class LineageStoreError(LineageError, TransientError):
    """The relational store failed (connection, lock timeout): the answer must not be served."""


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
