"""Embedding errors that carry what the retry loop needs."""

from __future__ import annotations

from schemas.errors import TransientError


class RateLimitedError(TransientError):
    """429 or 5xx: retry, no sooner than ``retry_after`` seconds when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
