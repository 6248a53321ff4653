"""Auditor endpoints over lineage, and the admin erasure; every result is the caller's tenant only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.api.deps import Caller, require_role
from services.api.models import UtcMoment
from services.api.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["lineage"])
Auditor = Annotated[Caller, Depends(require_role("auditor"))]
Admin = Annotated[Caller, Depends(require_role("admin"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/answers/{answer_id}")
def get_answer(answer_id: str, caller: Auditor, rt: RuntimeDep) -> dict[str, Any]:
    """The full trace of one answer: query, retrieved chunks with archived text, versions, timings."""
    return rt.audit.answer_trace(answer_id, caller.tenant, caller.access_tags).to_dict()


@router.get("/lineage/documents/{document_id}/answers")
def answers_for_document(
    document_id: str, caller: Auditor, rt: RuntimeDep,
    version: Annotated[str | None, Query(description="only this document version")] = None,
    since: Annotated[UtcMoment | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[UtcMoment | None, Query(description="created before (ISO 8601, exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Answers that used the document, newest first, paginated by ``next_cursor``."""
    page = rt.audit.answers_for_document(document_id, tenant=caller.tenant, reader_tags=caller.access_tags,
                                         version=version, since=since, until=until, limit=limit, cursor=cursor)
    return page.to_dict()


@router.post("/documents/{document_id}/forget")
def forget_document(document_id: str, caller: Admin, rt: RuntimeDep) -> dict[str, Any]:
    """Erasure: remove from retrieval, erase the archived chunk text (ids stay), list the answers that used it."""
    report = rt.audit.forget(caller.tenant, document_id)
    return asdict(report)
