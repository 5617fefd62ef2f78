"""What the running service holds: the model it serves and whether it may take traffic."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel

from app.errors import ModelNotReady
from app.inference import Batcher, Inference
from app.predictor import Predictor
from app.schemas import request_model_for
from app.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    """A loaded predictor with the request schema and the inference path that go with it."""

    predictor: Predictor
    request_model: type[BaseModel]
    inference: Inference

    @classmethod
    def build(cls, predictor: Predictor, settings: Settings) -> ServedModel:
        batcher = None
        if settings.batching == "on":
            batcher = Batcher(
                predictor.runtime,
                max_rows=settings.batch_max_size,
                timeout=settings.batch_timeout_micros / 1e6,
            )
        return cls(predictor, request_model_for(predictor.stats), Inference(predictor, batcher))


@dataclass
class ServiceState:
    served: ServedModel | None = None
    shutting_down: bool = False

    def require(self) -> ServedModel:
        """The served model, or 503 while none is ready or the service is shutting down."""
        if self.served is None or self.shutting_down:
            raise ModelNotReady("model is not loaded yet or the service is shutting down")
        return self.served


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    return service_state(request).require().predictor
