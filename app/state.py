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

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.shutting_down


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    state = service_state(request)
    if state.predictor is None or not state.ready:
        raise ModelNotReady("model is not loaded yet or the service is shutting down")
    return state.predictor
