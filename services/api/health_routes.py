"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from services.api.problems import problem
from services.api.runtime import Runtime, get_runtime

router = APIRouter(tags=["health"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(rt: RuntimeDep) -> Any:
    """The index and the relational store answer; 503 names whichever does not."""
    checks: dict[str, str] = {}
    comps = rt.components
    try:
        comps.index.count(comps.serving_collection)
        checks["index"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        checks["index"] = f"error: {exc}"
    try:
        with comps.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {exc}"
    failing = [k for k, v in checks.items() if v != "ok"]
    if failing:
        return problem(503, "Not ready", f"unavailable: {', '.join(failing)}", checks=checks)
    return {"status": "ready", "checks": checks, "collection": comps.serving_collection}


@router.get("/metrics")
def metrics(rt: RuntimeDep) -> Response:
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
