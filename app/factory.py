"""The app factory and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from app.errors import install_error_handlers
from app.loading import load_models
from app.openapi import install_model_openapi
from app.predictor import Predictor
from app.routes import health, predict, tfserving, v2
from app.settings import Settings
from app.state import ServedModel, ServiceState


def create_app(
    settings: Settings | None = None, models: dict[str, Predictor] | None = None
) -> FastAPI:
    """Build the service. Pass `models` (by name) when they were loaded already, else the
    lifespan loads every model under MODEL_DIR.

    The models are loaded and warmed before the server accepts its first request.
    """
    settings = settings or Settings()
    state = ServiceState(default=settings.model_name)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loaded = models
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(load_models, settings)
        served = {name: ServedModel.build(p, settings) for name, p in loaded.items()}
        state.models = served
        # Start-up objects (schemas, modules, the model) live as long as the process: freezing
        # them keeps the garbage collector from walking them again and again under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            state.shutting_down = True
            state.models = {}
            for model in served.values():
                model.inference.close()

    app = FastAPI(
        title="tabserve",
        summary="Predictions from a tabular TensorFlow model bundle.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    app.include_router(predict.router)
    predict.install_fast_path(app)
    app.include_router(health.router)
    app.include_router(tfserving.router)
    app.include_router(v2.router)
    install_model_openapi(app, state)
    return app
