"""What the running service holds: the model it serves and whether it may take traffic."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from pydantic import BaseModel

from app.errors import ModelNotReady, NotFound
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
    default: str
    models: dict[str, ServedModel] = field(default_factory=dict)
    shutting_down: bool = False

    def require(self, name: str | None = None, version: int | None = None) -> ServedModel:
        """Model `name` (the default when None), checked against `version` when given; 503
        while nothing is loaded or the service is shutting down, 404 for what is not served."""
        if not self.models or self.shutting_down:
            raise ModelNotReady("model is not loaded yet or the service is shutting down")
        served = self.models.get(name or self.default)
        if served is None:
            raise NotFound(f"model {name!r} is not served; models: {', '.join(self.models)}")
        if version is not None and version != served.predictor.version:
            raise NotFound(
                f"version {version} of model {name!r} is not served; "
                f"versions: {served.predictor.version}"
            )
        return served


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def current_predictor(request: Request) -> Predictor:
    """Route dependency: the loaded predictor, or 503 while none is ready."""
    return service_state(request).require().predictor
