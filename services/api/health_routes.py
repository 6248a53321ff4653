"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
    checks = rt.maintenance.readiness()
    failing = [k for k, v in checks.items() if v != "ok"]
    if failing:
        return problem(503, "Not ready", f"unavailable: {', '.join(failing)}", checks=checks)
    return {"status": "ready", "checks": checks, "collection": rt.maintenance.serving_generation()}


@router.get("/metrics")
def metrics(rt: RuntimeDep) -> Response:
    return Response(generate_latest(rt.metrics.prometheus), media_type=CONTENT_TYPE_LATEST)
