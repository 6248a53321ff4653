"""One error hierarchy for the whole service.

Whether an error is worth retrying is decided by its type, not by string matching:
workers dead-letter :class:`TerminalError` and retry :class:`TransientError`.
"""

from __future__ import annotations


class RaglineError(Exception):
    """Base of every error ragline raises on purpose."""


class TerminalError(RaglineError):
    """Retrying will not help: bad input, unsupported format, over a limit."""


class TransientError(RaglineError):
    """Retrying later may succeed: a rate limit, a timeout, a store that is down."""


class ConfigurationError(TerminalError):
    """A setting is missing or invalid; the message names the variable and value."""


class ExtractionError(TerminalError):
    """A document could not be extracted; the message names the source and the cause."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Crosses the extraction sandbox's pipe: pickle with both arguments.
        return (type(self), (self.source, self.reason))


class LimitExceededError(ExtractionError):
    """A configured size, page, time or memory limit was exceeded."""


class BudgetExceededError(TerminalError):
    """An ingest run would spend more on embeddings than its configured budget."""


class EmbeddingError(RaglineError):
    """The embedding provider failed in a way retries did not fix."""


class VectorIndexError(RaglineError):
    """The vector index failed (translated from the index library's own error)."""


class NotFoundError(TerminalError):
    """A document, answer or job that was asked for does not exist (for this tenant)."""


def driver_message(exc: BaseException) -> str:
    """A database failure as the driver's class and first message line, without the SQL
    text or parameters a wrapper adds (they may hold a client's query or a document's text)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {(lines[0] if lines else '')[:300]}"
