"""What the running service holds: the model it serves and whether it may take traffic."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.bundle import Decoded
from app.errors import ModelNotReady, NotFound, shown
from app.model.drift import DriftMonitor
from app.model.inference import Batcher, Inference
from app.model.predictor import Predictor, Rows
from app.model.request_schema import request_model_for
from app.model.shadow import Shadow
from app.model.turn_batcher import TurnBatcher
from app.ops import request_context
from app.ops.payload_log import PayloadLog, entry
from app.ops.request_context import note_model
from app.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    """A loaded predictor with the request schema and the inference path that go with it."""

    predictor: Predictor
    request_model: type[BaseModel]
    inference: Inference

    @classmethod
    def build(
        cls,
        predictor: Predictor,
        settings: Settings,
        on_call: Callable[[int], None] | None = None,
        payload_log: PayloadLog | None = None,
        shadow: Shadow | None = None,
    ) -> ServedModel:
        """`on_call` hears the number of rows in each model call, batched or not; the
        `payload_log`, when there is one, every request's rows and predictions, and so does
        the `shadow` version of the model, when one is configured."""
        drift = None
        if settings.drift == "on" and predictor.reference is not None:
            drift = DriftMonitor(predictor.stats, predictor.reference, settings.drift_window_rows)
        batcher: Batcher | TurnBatcher | None = None
        if settings.batching == "on" and predictor.runtime.fast:
            batcher = TurnBatcher(predictor, settings.batch_max_size, on_call, drift)
        elif settings.batching == "on":
            batcher = Batcher(
                predictor.runtime,
                max_rows=settings.batch_max_size,
                timeout=settings.batch_timeout_micros / 1e6,
                on_batch=on_call,
            )
        log = None if payload_log is None else _logger_for(predictor, payload_log)
        inference = Inference(predictor, batcher, on_call, drift, log, shadow=shadow)
        return cls(predictor, request_model_for(predictor.stats), inference)


def _logger_for(predictor: Predictor, payload_log: PayloadLog) -> Callable[[Rows, Decoded], None]:
    name, version, classes = predictor.name, predictor.version, predictor.metadata.classes

    def log(rows: Rows, decoded: Decoded) -> None:
        info = request_context.current.get()
        answer: dict[str, Any] = {"predictions": decoded.values}
        if decoded.probabilities is not None:
            answer |= {"probabilities": decoded.probabilities, "classes": classes}
        request_id = info.request_id if info is not None else uuid.uuid4().hex
        payload_log.submit(entry(request_id, name, version, rows, answer))

    return log


@dataclass
class ServiceState:
    """The models being served, by name. `models` is only ever replaced, never changed in
    place, so a request that took a model keeps it even while a reload swaps in another."""

    default: str
    models: dict[str, ServedModel] = field(default_factory=dict)
    shutting_down: bool = False
    """Set when SIGTERM arrives: readiness answers 503 while requests in flight finish."""

    def swap(self, served: ServedModel) -> ServedModel | None:
        """Serve `served` under its model's name; the one it replaces, if any."""
        old = self.models.get(served.predictor.name)
        self.models = {**self.models, served.predictor.name: served}
        return old

    def require(self, name: str | None = None, version: int | None = None) -> ServedModel:
        """Model `name` (the default when None), checked against `version` when given; 503
        while nothing is loaded, 404 for what is not served."""
        if not self.models:
            raise ModelNotReady("model is not loaded yet or the service has stopped")
        served = self.models.get(name or self.default)
        if served is None:
            raise NotFound(f"model {shown(name)!r} is not served; models: {', '.join(self.models)}")
        if version is not None and version != served.predictor.version:
            raise NotFound(
                f"version {version} of model {shown(name)!r} is not served; "
                f"versions: {served.predictor.version}"
            )
        note_model(served.predictor.name, served.predictor.version)
        return served

    def require_ready(self, name: str | None = None, version: int | None = None) -> ServedModel:
        """As `require`, for readiness probes: also 503 once shutting down, so the
        orchestrator stops sending traffic while requests in flight finish."""
        if self.shutting_down:
            raise ModelNotReady("the service is shutting down")
        return self.require(name, version)
