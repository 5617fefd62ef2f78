"""The Open Inference Protocol v2 (KServe, Triton, MLServer clients): health, metadata, infer.

The tensors are read and written in `app.http.codecs.v2`. Errors are `{"error": "..."}`: 400
for a bad request, 404 for an unknown model, 503 when not ready.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.http.codecs import v2
from app.http.codecs.json_body import protocol_body
from app.http.codecs.v2 import InferBody
from app.http.dependencies import service_state
from app.http.responses import json_response, protocol_errors
from app.http.schemas import error_responses
from app.http.versioned_routes import add_model_route

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", responses=error_responses(503))
async def ready(request: Request) -> dict[str, bool]:
    service_state(request).require_ready()  # 503 until every model is loaded, and draining
    return {"ready": True}


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return v2.server_metadata()


async def model_metadata(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    """Platform, one input per feature ([-1]) and the outputs, with datatypes and shapes."""
    return v2.model_metadata(service_state(request).require(name, version))


async def model_ready(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    service_state(request).require_ready(name, version)
    return {"name": name, "ready": True}


async def infer(request: Request, name: str, version: int | None = None) -> Response:
    served = service_state(request).require(name, version)
    body = protocol_body(await request.body(), InferBody)
    with protocol_errors():
        decoded = await served.inference.predict_rows(v2.rows(served, body.inputs))
    tensors = v2.output_tensors(decoded)
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": str(served.predictor.version),
        "outputs": [{"name": o, **tensors[o]} for o in v2.wanted_outputs(body.outputs, tensors)],
    }
    if body.id is not None:
        answer["id"] = body.id
    return json_response(answer)


_LOOKUPS = error_responses(404, 422, 503)
_CALLS = error_responses(400, 404, 413, 422, 503)

add_model_route(router, "/models/{name}", model_metadata, "GET", responses=_LOOKUPS)
add_model_route(router, "/models/{name}/ready", model_ready, "GET", responses=_LOOKUPS)
add_model_route(router, "/models/{name}/infer", infer, "POST", responses=_CALLS, body=InferBody)
