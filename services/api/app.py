"""The FastAPI application: middleware (request id, auth, metrics), routers, lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from schemas import ids
from services.api import chat_routes, document_routes, health_routes, limits, lineage_routes, problems, query_routes
from services.api.deps import AuthError, authenticate
from services.api.limits import BodyLimit
from services.api.openapi import install_openapi
from services.api.runtime import Runtime
from services.application import Application
from services.errors import InvalidInput
from services.settings import ApiSettings

log = logging.getLogger("ragline.api")
_OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/redoc")


def create_app(application: Application, *, run_relay: bool = True) -> FastAPI:
    """The app over one Application (the process's use cases); with ``run_relay`` the
    outbox relay delivers lineage in the background. ``app.state.background`` holds more
    background tasks (``start()``/``stop()``, e.g. the worker of ``serve --worker``): started
    after the relay, stopped before it, and before the stores close."""
    runtime = Runtime(application)
    settings = application.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay = runtime.maintenance.relay_worker() if run_relay else None
        if relay:
            relay.start()
        for task in app.state.background:
            task.start()
        yield
        for task in reversed(app.state.background):
            task.stop()
        if relay:
            relay.stop()
        runtime.close()

    app = FastAPI(title="ragline", version="0.1.0", lifespan=lifespan,
                  description="Grounded answers with lineage: retrieval, query, OpenAI-compatible chat, documents.")
    app.state.application = application
    app.state.runtime = runtime
    app.state.background = []
    problems.install(app)
    install_openapi(app, settings.api)
    app.add_exception_handler(InvalidInput, _invalid_input)  # type: ignore[arg-type]
    for module in (query_routes, chat_routes, document_routes, lineage_routes, health_routes):
        app.include_router(module.router)
    # Inside the request-id middleware: a BaseHTTPMiddleware reads the body in a task
    # group, which would wrap the limit's 413 in an ExceptionGroup.
    app.add_middleware(BodyLimit, limit_for=_body_limit(settings.api))
    app.middleware("http")(_context_middleware)
    if settings.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api.cors_origins),
                           allow_methods=["*"], allow_headers=["*"], expose_headers=["X-Request-ID"])
    return app


def _body_limit(api: ApiSettings) -> Callable[[str, str], int]:
    """Uploads may carry a document (plus multipart framing); every other body is small."""
    upload = api.max_upload_bytes + 1024 * 1024

    def limit_for(method: str, path: str) -> int:
        return upload if method == "POST" and path.rstrip("/") == "/v1/documents" else api.max_body_bytes

    return limit_for


async def _invalid_input(request: Request, exc: InvalidInput) -> Response:
    return problems.problem(exc.status, "Invalid request" if exc.status == 422 else "Too large",
                            f"{exc.field}: {exc.message}", request,
                            errors=[{"field": exc.field, "message": exc.message}])


async def _context_middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Request id (the caller's X-Request-ID, or a new one), authentication, latency metrics."""
    started = time.perf_counter()
    request_id = limits.request_id(request.headers.get("x-request-id")) or ids.uuid7()
    request.state.request_id = request_id
    request.state.traceparent = limits.traceparent(request.headers.get("traceparent"))
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    try:
        if request.url.path.startswith(_OPEN_PATHS):
            request.state.caller = None
        else:
            request.state.caller = authenticate(settings.api, settings.default_tenant,
                                                request.headers.get("authorization"), request.headers.get("x-api-key"))
        response = await call_next(request)
    except AuthError as exc:
        response = problems.problem(exc.status, exc.title, exc.detail, request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    runtime.metrics.requests.labels(path, request.method, str(response.status_code)).observe(
        time.perf_counter() - started)
    if response.status_code >= 400:
        runtime.metrics.errors.labels(path, str(response.status_code)).inc()
    response.headers["X-Request-ID"] = request.state.request_id
    log.info("%s %s %s request_id=%s", request.method, request.url.path, response.status_code, request_id)
    return response
