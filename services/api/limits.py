"""Edge limits applied before any handler runs: body size counted on the bytes actually
received, and the request id and trace context headers normalized.

The body limit counts the bytes actually received rather than trusting
``Content-Length``: a chunked body has none, and a lying one is not trusted. Reading
stops with a 413 the moment the limit is passed, so neither a JSON parser nor the
multipart spooler ever holds more than the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_REQUEST_ID = 128
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def request_id(header: str | None) -> str | None:
    """The caller's X-Request-ID, cut to what every store accepts."""
    if not header:
        return None
    cleaned = "".join(ch for ch in header if ch.isprintable())[:MAX_REQUEST_ID]
    return cleaned or None


def traceparent(header: str | None) -> str | None:
    """A W3C trace context ``traceparent``, or None when absent or invalid (then ignored,
    as the spec asks of a receiver)."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip())
    if not match:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    return match.group(0)


class BodyLimit:
    """Caps each request body at ``limit_for(method, path)`` bytes.

    The counting is Starlette's ``RequestBodyLimitMiddleware`` (FastAPI turns its signal
    into a 413 wherever the body is read); this wrapper only picks the limit per route,
    because the upload route's limit comes from settings, not from a decorator.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = RequestBodyLimitMiddleware(self.app, self.limit_for(scope["method"], scope["path"]))
        await limited(scope, receive, send)
