"""Probes for orchestrators: liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.predictor import Predictor
from app.schemas import ErrorResponse, Liveness, Readiness
from app.state import current_predictor

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def liveness() -> Liveness:
    """200 while the process runs and its event loop answers."""
    return Liveness()


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
async def readiness(predictor: Annotated[Predictor, Depends(current_predictor)]) -> Readiness:
    """200 once a model is loaded and warmed; 503 before that and while shutting down."""
    return Readiness(
        model_name=predictor.name, model_version=predictor.version, runtime=predictor.runtime.name
    )
