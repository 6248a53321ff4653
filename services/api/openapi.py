"""The OpenAPI document, completed: what FastAPI cannot infer from the handlers is added here.

* every error a route can answer, as an RFC 9457 ``Problem`` (``application/problem+json``):
  401 and 403 on every ``/v1`` operation, 404 where a path names a resource, 413 where a
  body is read, 422 where anything is validated, 503 where a store or provider may be down;
* the upload's JSON body (``DocumentJson``) and its other outcomes (200 unchanged, 202 queued);
* the SSE form of the answering endpoints, and /metrics as Prometheus text;
* the limits this app enforces at run time (``api.max_k``, ``api.max_query_chars``), as
  ``maximum`` / ``maxLength`` of the request fields, from the settings the app was built with.

Schemathesis (tests/services/test_schemathesis.py) holds the running app to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.api.document_routes import DocumentJson
from services.settings import ApiSettings

PROBLEM_MEDIA_TYPE = "application/problem+json"
_REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each field at fault.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "always 'about:blank': the status says what happened"},
        "title": {"type": "string", "description": "short summary of the status, e.g. 'Invalid request'"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what is wrong, naming the field"},
        "instance": {"type": "string", "description": "the request path"},
        "request_id": {"type": "string", "description": "as in the X-Request-ID response header"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object", "required": ["field", "message"],
                "properties": {"field": {"type": "string", "description": "dotted path, e.g. 'filters.k'"},
                               "message": {"type": "string"}},
            },
        },
        "checks": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "/readyz: each dependency and its state"},
    },
}

_DESCRIPTIONS = {
    400: "The body cannot be parsed at all (not UTF-8 JSON, broken multipart)",
    401: "Missing or unknown API key (only when API keys are configured)",
    403: "The API key lacks the role this operation needs",
    404: "Not found for this tenant",
    413: "Request body or document over a configured limit",
    422: "Invalid request: `errors` names each field at fault",
    503: "A store or provider is temporarily unavailable; retrying later may succeed",
}

_JOB_ACCEPTED: dict[str, Any] = {
    "description": "Large upload queued as a background job; poll `status_url`",
    "headers": {"Location": {"description": "the job's status URL", "required": True,
                             "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["job_id", "status", "status_url"],
        "properties": {"job_id": {"type": "string"}, "status": {"type": "string"},
                       "status_url": {"type": "string"}},
    }}},
}

_SSE: dict[str, Any] = {"text/event-stream": {}}  # with stream=true; OpenAPI 3.1 cannot describe the events


def install_openapi(app: FastAPI, api: ApiSettings) -> None:
    """Serve the completed document from ``app.openapi()`` (and so ``/openapi.json``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app), api)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], api: ApiSettings) -> dict[str, Any]:
    """Add to FastAPI's ``document`` (in place) what the module docstring lists; returns it."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    if "DocumentJson" not in schemas:
        model = DocumentJson.model_json_schema(ref_template=_REF)
        for name, definition in model.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        model.setdefault("description", "A document as JSON: exactly one of `text` or `uri`.")
        schemas["DocumentJson"] = model
    _limits(schemas, api)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _responses(path, method, operation)
    _drop_unused(document, ("HTTPValidationError", "ValidationError"))
    return document


def _limits(schemas: dict[str, Any], api: ApiSettings) -> None:
    """``check_query``'s limits, visible to clients before they are refused."""
    for name, schema in schemas.items():
        if name.split("-")[0] not in ("RetrieveRequest", "QueryRequest", "ChatCompletionRequest"):
            continue
        properties = schema.get("properties", {})
        if "k" in properties:
            properties["k"]["maximum"] = api.max_k
        if "query" in properties:
            properties["query"]["maxLength"] = api.max_query_chars


def _responses(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: set[int] = set()
    if path.startswith("/v1/"):
        statuses |= {401, 403, 503}
        if "{" in path:
            statuses.add(404)
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if operation.get("requestBody"):
        statuses |= {400, 413}
    if path == "/readyz":
        statuses.add(503)
    if (method, path) == ("post", "/v1/documents"):
        created = responses.get("201", {})
        responses.setdefault("200", {**created, "description": "Unchanged: this version is already indexed"})
        responses.setdefault("202", _JOB_ACCEPTED)
    if (method, path) in (("post", "/v1/query"), ("post", "/v1/chat/completions")):
        ok = responses.setdefault("200", {"description": "Successful Response"})
        for media_type, content in _SSE.items():
            ok.setdefault("content", {}).setdefault(media_type, content)
    if (method, path) == ("get", "/metrics"):
        responses["200"] = {"description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}
    for status in sorted(statuses):
        existing = responses.get(str(status))
        if existing is None or _is_fastapi_validation(existing):
            responses[str(status)] = _problem(status)


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "Bearer", "required": True,
                                                    "schema": {"type": "string"}}}
    return response


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    """FastAPI's default 422 (``HTTPValidationError`` as application/json), which this app never sends."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _drop_unused(document: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas = document["components"]["schemas"]
    for name in names:
        if name in schemas and not _references(document, _REF.format(model=name)):
            del schemas[name]


def _references(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_references(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_references(v, ref) for v in node)
    return False
