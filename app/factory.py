"""The app factory and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from app.errors import install_error_handlers
from app.loading import load_predictor
from app.predictor import Predictor
from app.routes import health, predict
from app.settings import Settings
from app.state import ServedModel, ServiceState


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """Build the service. Pass `predictor` when it was loaded already, else the lifespan loads it.

    The model is loaded and warmed before the server accepts its first request.
    """
    settings = settings or Settings()
    state = ServiceState()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loaded = predictor
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(load_predictor, settings)
        served = state.served = ServedModel.build(loaded, settings)
        # Start-up objects (schemas, modules, the model) live as long as the process: freezing
        # them keeps the garbage collector from walking them again and again under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            state.shutting_down = True
            state.served = None
            served.inference.close()

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
    return app
