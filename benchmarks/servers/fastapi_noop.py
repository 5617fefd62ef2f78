"""FastAPI with the service's request schema and no model: the ceiling of our stack.

Run: `uvicorn benchmarks.servers.fastapi_noop:app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from benchmarks.servers.schema import PredictRequest

app = FastAPI()


@app.post("/predict")
async def predict(body: PredictRequest) -> dict[str, Any]:
    """Validate the rows and answer a zero for each."""
    return {"predictions": [0.0] * len(body.instances), "model_name": "noop", "model_version": 1}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Always ready: there is nothing to load."""
    return {"status": "ready"}
