"""Probes for orchestrators: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.http.dependencies import service_state
from app.http.schemas import ErrorResponse, Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def liveness() -> Liveness:
    """200 while the process runs and its event loop answers."""
    return Liveness()


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
async def readiness(request: Request) -> Readiness:
    """200 once every model is loaded and warmed; 503 before that and while shutting down."""
    state = service_state(request)
    predictor = state.require_ready().predictor
    return Readiness(
        model_name=predictor.name,
        model_version=predictor.version,
        runtime=predictor.runtime.name,
        models={name: served.predictor.version for name, served in state.models.items()},
    )
