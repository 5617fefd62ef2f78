"""What the running service holds: the loaded predictor and whether it may take traffic."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel

from app.errors import ModelNotReady
from app.predictor import Predictor
from app.schemas import request_model_for


@dataclass
class ServiceState:
    predictor: Predictor | None = None
    request_model: type[BaseModel] | None = None
    shutting_down: bool = False

    def serve(self, predictor: Predictor | None) -> None:
        """Take `predictor` (None: stop serving) and the request schema that goes with it."""
        self.predictor = predictor
        self.request_model = None if predictor is None else request_model_for(predictor.stats)


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    state = service_state(request)
    if state.predictor is None or state.shutting_down:
        raise ModelNotReady("model is not loaded yet or the service is shutting down")
    return state.predictor
