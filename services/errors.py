"""Errors the use cases raise about a caller's input, whatever the entry point."""

from __future__ import annotations

from schemas.errors import TerminalError


class InvalidInput(TerminalError):
    """A request field breaks a rule or a configured limit; the API answers a problem naming
    the field (422, or 413 for sizes), the CLI prints it, the worker dead-letters it."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
