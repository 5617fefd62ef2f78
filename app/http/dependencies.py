"""Route dependencies: the service state and the default predictor of the app a request reached."""

from __future__ import annotations

from fastapi import Request

from app.model.predictor import Predictor
from app.model.state import ServiceState
from app.ops.live_cost import LiveCost


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    return service_state(request).require().predictor


def live_cost(request: Request) -> LiveCost:
    cost: LiveCost = request.app.state.metrics.live_cost
    return cost
