"""Errors as RFC 9457 problem details (``application/problem+json``), naming the field at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import (
    ConfigurationError,
    LimitExceededError,
    NotFoundError,
    RaglineError,
    TerminalError,
    TransientError,
)
from services.api.deps import AuthError

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, request: Request | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {}
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
            headers["X-Request-ID"] = request_id
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """The field's path without its location prefix: ("body", "filters", "k") -> "filters.k"."""
    if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "Invalid request", detail, request, errors=errors)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(exc.status_code, _title(exc.status_code), str(exc.detail), request)


async def _auth(request: Request, exc: AuthError) -> JSONResponse:
    return problem(exc.status, exc.title, exc.detail, request)


async def _ragline(request: Request, exc: RaglineError) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return problem(404, "Not found", str(exc), request)
    if isinstance(exc, LimitExceededError):
        return problem(413, "Too large", str(exc), request)
    if isinstance(exc, ConfigurationError):
        return problem(500, "Server misconfigured", str(exc), request)
    if isinstance(exc, TerminalError):
        return problem(422, "Cannot process", str(exc), request)
    if isinstance(exc, TransientError):
        return problem(503, "Temporarily unavailable", str(exc), request)
    return problem(500, "Internal error", str(exc), request)


def _title(status: int) -> str:
    return {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
            413: "Too large", 422: "Invalid request", 429: "Too many requests"}.get(status, "Error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(AuthError, _auth)  # type: ignore[arg-type]
    app.add_exception_handler(RaglineError, _ragline)  # type: ignore[arg-type]
