"""Documents over HTTP: upload (multipart or JSON), list, get, delete; background jobs."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from starlette.datastructures import UploadFile

from ingest.registry import DocumentRecord
from schemas import ids
from schemas.documents import SourceDocument
from schemas.errors import NotFoundError
from services.api.deps import Caller, require_role
from services.api.models import CleanStr
from services.api.runtime import Runtime, get_runtime
from services.errors import InvalidInput
from services.ingestion import outcome_view
from services.jobs import Job

router = APIRouter(prefix="/v1", tags=["documents"])
Ingester = Annotated[Caller, Depends(require_role("ingester"))]
Reader = Annotated[Caller, Depends(require_role("reader"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
_UPLOAD_DOC = {
    "requestBody": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/DocumentJson"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, "metadata": {"type": "string", "description": "JSON"},
            "access_tags": {"type": "array", "items": {"type": "string"}}, "document_id": {"type": "string"},
            "password": {"type": "string"}}}},
    }, "required": True}
}


_RESERVED_SCHEMES = ("upload://", "text://")
_METADATA = TypeAdapter(dict[str, Any])
MAX_METADATA_BYTES = 64 * 1024


class UploadFields(BaseModel):
    """The fields both upload forms (multipart and JSON) share, validated the same way."""

    model_config = ConfigDict(extra="forbid")

    document_id: CleanStr | None = Field(None, min_length=1, max_length=64)
    metadata: dict[str, Any] = Field(default_factory=dict,
                                     description=f"JSON object, at most {MAX_METADATA_BYTES} bytes")
    access_tags: list[Annotated[CleanStr, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100)
    password: str | None = Field(None, max_length=1024)

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_METADATA_BYTES:
            raise ValueError(f"exceeds {MAX_METADATA_BYTES:,} bytes of JSON")
        return value


class DocumentJson(UploadFields):
    text: str | None = Field(None, description="the document's text")
    uri: CleanStr | None = Field(None, max_length=4096, description="http(s) URL to fetch")
    source_uri: CleanStr | None = Field(None, min_length=1, max_length=4096,
                                        description="identity of the document (default: uri, or derived)")
    media_type: str | None = Field(None, max_length=128, description="'text/markdown' for Markdown text")

    @field_validator("source_uri")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value and value.lower().startswith(_RESERVED_SCHEMES):
            raise ValueError("upload:// and text:// identities are assigned by the server")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DocumentJson:
        if (self.text is None) == (self.uri is None):
            raise ValueError("give exactly one of 'text' or 'uri'")
        return self


def safe_filename(name: str | None) -> str:
    """The last path component of a client's file name, without control characters, so
    ``upload://tenant/<name>`` never climbs out of the tenant's namespace."""
    cleaned = "".join(ch for ch in (name or "") if ch.isprintable())
    base = PurePosixPath(cleaned.replace("\\", "/")).name.strip()
    return base[:255] if base not in ("", ".", "..") else "upload"


def _invalid(exc: ValidationError) -> InvalidInput:
    error = exc.errors()[0]
    return InvalidInput(".".join(str(p) for p in error["loc"]) or "body", error["msg"])


@router.post("/documents", status_code=201, openapi_extra=_UPLOAD_DOC)
async def upload(request: Request, response: Response, caller: Ingester, rt: RuntimeDep) -> dict[str, Any]:
    declared = int(request.headers.get("content-length") or 0)
    if declared > rt.settings.api.max_upload_bytes:
        limit = rt.settings.api.max_upload_bytes
        raise InvalidInput("file", f"{declared:,} bytes exceeds the upload limit of {limit:,}", status=413)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        source = await _from_form(request, caller, rt)
    else:
        source = await _from_json(request, caller, rt)
    accepted = await run_in_threadpool(rt.ingestion.accept, source)
    if isinstance(accepted, Job):
        response.status_code = 202
        response.headers["Location"] = f"/v1/jobs/{accepted.job_id}"
        return {"job_id": accepted.job_id, "status": accepted.status, "status_url": f"/v1/jobs/{accepted.job_id}"}
    if accepted.status == "failed":
        raise InvalidInput("file", accepted.error or "document failed")
    if accepted.status == "unchanged":
        response.status_code = 200
    return outcome_view(accepted)


async def _from_form(request: Request, caller: Caller, rt: RuntimeDep) -> SourceDocument:
    form = await request.form()
    upload_file = form.get("file")
    if not isinstance(upload_file, UploadFile):
        raise InvalidInput("file", "multipart upload needs a 'file' part")
    data = await upload_file.read(rt.settings.api.max_upload_bytes + 1)
    if len(data) > rt.settings.api.max_upload_bytes:
        raise InvalidInput("file", f"exceeds the upload limit of {rt.settings.api.max_upload_bytes:,} bytes", 413)
    try:
        metadata = _METADATA.validate_json(str(form.get("metadata") or "{}"))
    except ValidationError as exc:
        raise InvalidInput("metadata", f"must be a JSON object: {exc.errors()[0]['msg']}") from exc
    try:
        fields = UploadFields(document_id=_opt(form.get("document_id")), metadata=metadata,
                              access_tags=[str(t) for t in form.getlist("access_tags") if str(t)],
                              password=_opt(form.get("password")))
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return SourceDocument(f"upload://{caller.tenant}/{safe_filename(upload_file.filename)}", data, caller.tenant,
                          document_id=fields.document_id, access_tags=tuple(fields.access_tags),
                          password=fields.password, metadata=fields.metadata)


async def _from_json(request: Request, caller: Caller, rt: RuntimeDep) -> SourceDocument:
    try:
        body = DocumentJson.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from exc
    if body.text is not None:
        data = body.text.encode("utf-8")
        suffix = ".md" if body.media_type == "text/markdown" else ".txt"
        source_uri = body.source_uri or f"text://{caller.tenant}/{ids.document_version(data)[:16]}{suffix}"
    else:
        source_uri = body.source_uri or str(body.uri)
        data = await _fetch(str(body.uri), rt)
    return SourceDocument(source_uri, data, caller.tenant, document_id=body.document_id,
                          access_tags=tuple(body.access_tags), password=body.password, metadata=body.metadata)


async def _fetch(url: str, rt: Runtime) -> bytes:
    """Fetched off the event loop; a refused URI is a 422 before any job is queued."""
    return await run_in_threadpool(rt.ingestion.fetch_for_tenant, url, rt.settings.api.max_upload_bytes)


def _opt(value: object) -> str | None:
    return str(value) if value else None


def _record_view(r: DocumentRecord) -> dict[str, Any]:
    return {"document_id": r.document_id, "version": r.version, "source_uri": r.source_uri,
            "media_type": r.media_type, "status": r.status, "chunk_count": r.chunk_count, "title": r.title,
            "access_tags": r.access_tags, "last_error": r.last_error, "metadata": r.metadata,
            "pii_redacted": r.pii_redacted, "created_at": r.created_at, "updated_at": r.updated_at}


@router.get("/documents")
def list_documents(caller: Reader, rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0, status: str | None = None,
                   source_prefix: str | None = None) -> dict[str, Any]:
    records, total = rt.ingestion.list_documents(caller.tenant, reader_tags=caller.access_tags, status=status,
                                                 source_prefix=source_prefix, limit=limit, offset=offset)
    return {"documents": [_record_view(r) for r in records], "total": total, "limit": limit, "offset": offset}


@router.get("/documents/{document_id}")
def get_document(document_id: str, caller: Reader, rt: RuntimeDep) -> dict[str, Any]:
    record = rt.ingestion.get_document(caller.tenant, document_id, caller.access_tags)
    if record is None:
        raise NotFoundError(f"document {document_id} not found")
    return _record_view(record)


@router.delete("/documents/{document_id}", status_code=204)
def delete_document(document_id: str, caller: Ingester, rt: RuntimeDep) -> Response:
    if not rt.ingestion.delete(caller.tenant, document_id, caller.access_tags):
        raise NotFoundError(f"document {document_id} not found")
    return Response(status_code=204)


@router.get("/jobs/{job_id}")
def get_job(job_id: str, caller: Reader, rt: RuntimeDep) -> dict[str, Any]:
    job = rt.ingestion.job(caller.tenant, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job.view()
