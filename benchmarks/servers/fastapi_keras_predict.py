"""FastAPI calling Keras `model.predict` per request: the reference recipe of many tutorials.

Builds the bundle's MLP (10 -> Dense(128, relu) -> Dense(64, relu) -> Dense(1)) and copies the
weights from `<BENCH_VERSION_DIR>/saved_model` when their shapes match.
Run: `uvicorn benchmarks.servers.fastapi_keras_predict:app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from fastapi import FastAPI, HTTPException

from benchmarks.servers.preprocessing import VERSION_DIR, Standardiser
from benchmarks.servers.schema import FEATURES, PredictRequest

logger = logging.getLogger(__name__)
models: dict[str, Any] = {}


def build_model() -> keras.Model:
    """The reference MLP, with the bundle's weights when they fit."""
    model = keras.Sequential(
        [
            keras.Input(shape=(len(FEATURES),)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    saved = tf.saved_model.load(str(VERSION_DIR / "saved_model"))
    weights = [v.numpy() for v in saved.variables]
    if [w.shape for w in weights] == [tuple(w.shape) for w in model.weights]:
        model.set_weights(weights)
    else:
        logger.warning("bundle weights do not fit the reference MLP; using random weights")
    return model


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Build the model and the preprocessing once."""
    models["model"] = build_model()
    models["standardiser"] = Standardiser(VERSION_DIR)
    yield
    models.clear()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict(body: PredictRequest) -> dict[str, Any]:
    """Standardise the rows and call `model.predict` on them."""
    standardiser: Standardiser = models["standardiser"]
    x = np.array(standardiser.inputs(body.instances))
    y = models["model"].predict(x, verbose=0)
    return {
        "predictions": standardiser.outputs(y),
        "model_name": VERSION_DIR.parent.name,
        "model_version": int(VERSION_DIR.name),
    }


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready once the lifespan has built the model."""
    if "model" not in models:
        raise HTTPException(503, "loading")
    return {"status": "ready"}
