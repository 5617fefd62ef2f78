"""The app factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from app.grpc.server import GrpcPortError, GrpcServer
from app.http.error_rendering import install_error_handlers
from app.http.middleware import ServiceMiddleware
from app.http.openapi import install_model_openapi
from app.http.routes import drift, health, metrics, pages, predict, shadow, tfserving, v2
from app.model.loading import load_models
from app.model.predictor import Predictor
from app.model.reloads import ModelWatcher
from app.model.shadow import ShadowVersions
from app.model.state import ServedModel, ServiceState
from app.ops.api_keys import DOCS_ASSETS, ApiKeys, read_api_keys
from app.ops.live_cost import LiveCost
from app.ops.metrics import Metrics
from app.ops.payload_log import CloudEventsSink, DirectorySink, PayloadLog, Sink
from app.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, models: dict[str, Predictor] | None = None
) -> FastAPI:
    """Build the service. Pass `models` (by name) when they were loaded already, else the
    lifespan loads every model under MODEL_DIR.

    The models are loaded and warmed before the server accepts its first request. Raises
    ApiKeyError when API_KEYS_FILE is set but unusable.
    """
    settings = settings or Settings()
    state = ServiceState(default=settings.model_name)
    telemetry = Metrics(LiveCost(settings.cost_window_seconds, settings.cost_per_cpu_hour))
    api_keys = ApiKeys(read_api_keys(settings))
    telemetry.watch_drift(
        lambda: [
            (name, served.inference.drift)
            for name, served in state.models.items()
            if served.inference.drift is not None
        ]
    )

    shadows = ShadowVersions(settings, telemetry.shadow_hooks)
    telemetry.watch_shadows(
        lambda: [
            served.inference.shadow
            for served in state.models.values()
            if served.inference.shadow is not None
        ]
    )

    payload_log = _payload_log(settings, telemetry)
    grpc_server = GrpcServer(settings, state, telemetry, api_keys) if settings.grpc_port else None

    def build(predictor: Predictor) -> ServedModel:
        on_call = telemetry.batch_size.labels(predictor.name).observe
        return ServedModel.build(
            predictor, settings, on_call, payload_log, shadows.for_served(predictor)
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loaded = models
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(load_models, settings)
        # A shadow that fails to load is reported and skipped: it never stops start-up.
        await anyio.to_thread.run_sync(shadows.load, list(loaded))
        for predictor in loaded.values():
            telemetry.observe_load(predictor.name, "startup", ok=True)
            telemetry.serving(predictor)
        state.models = {name: build(p) for name, p in loaded.items()}
        if payload_log is not None:
            payload_log.start()
        if grpc_server is not None:
            try:
                await grpc_server.start()
            except GrpcPortError as exc:
                logger.critical("cannot start: %s", exc)
                raise
        watching = None
        if settings.model_poll_seconds > 0:
            watcher = ModelWatcher(settings, state, telemetry, build, shadows)
            watching = asyncio.create_task(watcher.run(), name="model-watcher")
        # Start-up objects (schemas, modules, the model) live as long as the process: freezing
        # them keeps the garbage collector from walking them again and again under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await _shut_down(state, watching, grpc_server, payload_log)

    # FastAPIOffline serves Swagger UI's and ReDoc's files from the package instead of a CDN,
    # so /docs works where the service has no internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="tabserve",
        summary="Predictions from a tabular TensorFlow model bundle.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks look providers up on every request (several
        # microseconds); the service exports Prometheus metrics of its own instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = state
    app.state.metrics = telemetry
    app.state.grpc = grpc_server
    service = ServiceMiddleware(
        app.router,  # until the stack is built: then what FastAPI puts below it
        metrics=telemetry,
        api_keys=api_keys,
        max_body_bytes=settings.max_body_bytes,
        timeout=settings.request_timeout_seconds,
    )
    app.add_middleware(service.installed)
    install_error_handlers(app)
    _include_routes(app)
    service.endpoints[("POST", "/predict")] = predict.endpoint
    install_model_openapi(app, state, secured=api_keys.enabled)
    app.middleware_stack = _Front(app.build_middleware_stack(), service)
    return app


class _Front:
    """The app's outermost layer: a request for one of `service.endpoints` (POST /predict)
    goes straight to ServiceMiddleware; every other one, and the lifespan, to FastAPI's whole
    stack, in which the same ServiceMiddleware stands.

    FastAPI's outer layers (server errors, telemetry, body limit), and its exception handling
    and routing below ServiceMiddleware, cost about 13 us a request; POST /predict needs none
    of them (`app.http.routes.predict.endpoint`), and ServiceMiddleware renders its errors.
    """

    def __init__(self, stack: ASGIApp, service: ServiceMiddleware) -> None:
        self.stack = stack
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.service.endpoints:
            await self.service(scope, receive, send)
        else:
            await self.stack(scope, receive, send)


async def _shut_down(
    state: ServiceState,
    watching: asyncio.Task[None] | None,
    grpc_server: GrpcServer | None,
    payload_log: PayloadLog | None,
) -> None:
    """HTTP has drained the requests in flight by now: drain gRPC's, then finish the queued
    batches, shadow scores and payload log entries."""
    state.shutting_down = True
    if grpc_server is not None:  # its calls in flight finish on the models below
        await grpc_server.stop()
    if watching is not None:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    served, state.models = state.models, {}
    for model in served.values():
        model.inference.close()  # its batches, then its shadow's queue
    if payload_log is not None:  # every answered request is in the queue by now
        await payload_log.close()


def _include_routes(app: FastAPI) -> None:
    app.include_router(predict.router)
    for routes in (drift, shadow, pages, health, metrics, tfserving, v2):
        app.include_router(routes.router)


def _payload_log(settings: Settings, telemetry: Metrics) -> PayloadLog | None:
    sink: Sink
    if settings.payload_log_dir is not None:
        sink = DirectorySink(
            settings.payload_log_dir,
            settings.payload_log_max_bytes,
            settings.payload_log_rotate_seconds,
        )
    elif settings.payload_log_url is not None:
        sink = CloudEventsSink(settings.payload_log_url)
    else:
        return None
    return PayloadLog(sink, settings.payload_log_queue_rows, on_drop=telemetry.payload_dropped.inc)
