"""FastAPI calling the SavedModel's serving signature per request: the "obvious fix".

Loads `<BENCH_VERSION_DIR>/saved_model` with `tf.saved_model.load` and calls
`.signatures["serving_default"]` on each request's rows, with numpy preprocessing.
Run: `uvicorn benchmarks.servers.fastapi_savedmodel:app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import tensorflow as tf
from fastapi import FastAPI, HTTPException

from benchmarks.servers.preprocessing import VERSION_DIR, Standardiser
from benchmarks.servers.schema import PredictRequest

models: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Load the SavedModel and the preprocessing statistics once."""
    loaded = tf.saved_model.load(str(VERSION_DIR / "saved_model"))
    models["loaded"] = loaded  # keeps the signature's variables alive
    models["infer"] = loaded.signatures["serving_default"]
    models["standardiser"] = Standardiser(VERSION_DIR)
    yield
    models.clear()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict(body: PredictRequest) -> dict[str, Any]:
    """Standardise the rows, run the signature, return the predictions."""
    standardiser: Standardiser = models["standardiser"]
    x = standardiser.inputs(body.instances)
    out = models["infer"](tf.constant(x))
    y = next(iter(out.values())).numpy()
    return {
        "predictions": standardiser.outputs(y),
        "model_name": VERSION_DIR.parent.name,
        "model_version": int(VERSION_DIR.name),
    }


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready once the lifespan has loaded the model."""
    if "infer" not in models:
        raise HTTPException(503, "loading")
    return {"status": "ready"}
