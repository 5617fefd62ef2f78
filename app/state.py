"""What the running service holds: the loaded predictor and whether it may take traffic."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from app.errors import ModelNotReady
from app.predictor import Predictor


@dataclass
class ServiceState:
    predictor: Predictor | None = None
    shutting_down: bool = False


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    state: ServiceState = request.app.state.service
    if state.predictor is None or state.shutting_down:
        raise ModelNotReady("model is not loaded yet or the service is shutting down")
    return state.predictor
