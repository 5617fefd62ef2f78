"""TF Serving's REST API, as its clients call it: predict, regress, classify, status, metadata.

The bodies are read and written in `app.http.codecs.tfserving`. Errors are `{"error": "..."}`:
400 for a bad request, 404 for an unknown model or version.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.bundle import Decoded
from app.errors import BadRequest
from app.http.codecs import tfserving
from app.http.codecs.json_body import protocol_body
from app.http.codecs.tfserving import ExamplesBody, PredictBody
from app.http.dependencies import service_state
from app.http.responses import json_response, protocol_errors
from app.http.schemas import error_responses
from app.http.versioned_routes import add_model_route
from app.model.state import ServedModel

router = APIRouter(prefix="/v1/models", tags=["TF Serving REST API"])


async def predict(request: Request, name: str, version: int | None = None) -> Response:
    """`{"instances": [...]}` -> `{"predictions": [...]}`, `{"inputs": {...}}` -> `{"outputs"}`."""
    served = service_state(request).require(name, version)
    body = protocol_body(await request.body(), PredictBody)
    key, rows = tfserving.predict_rows(served, body)
    return json_response(tfserving.predict_answer(await _predict(served, rows, key), key))


async def regress(request: Request, name: str, version: int | None = None) -> Response:
    """`{"examples": [...], "context": {...}}` -> `{"results": [value, ...]}`."""
    served = service_state(request).require(name, version)
    body = protocol_body(await request.body(), ExamplesBody)
    if served.predictor.metadata.task != "regression":
        raise BadRequest(f"model {name!r} is a classifier: use :classify or :predict")
    decoded = await _predict(served, tfserving.example_rows(served, body), "examples")
    return json_response({"results": decoded.values})


async def classify(request: Request, name: str, version: int | None = None) -> Response:
    """`{"examples": [...]}` -> `{"results": [[[label, score], ...], ...]}`, labels as text."""
    served = service_state(request).require(name, version)
    body = protocol_body(await request.body(), ExamplesBody)
    classes = served.predictor.metadata.classes
    if classes is None:
        raise BadRequest(f"model {name!r} is a regression model: use :regress or :predict")
    decoded = await _predict(served, tfserving.example_rows(served, body), "examples")
    return json_response({"results": tfserving.classify_results(decoded, classes)})


async def status(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    """The served version of the model, state AVAILABLE."""
    served = service_state(request).require(name, version)
    return {
        "model_version_status": [
            {
                "version": str(served.predictor.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


async def metadata(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    """The model's `serving_default` signature: one input per feature, its outputs."""
    predictor = service_state(request).require(name, version).predictor
    signature: dict[str, Any] = {
        kind: {
            tensor: _tensor(tensor, dtype, width)
            for tensor, (dtype, width) in tfserving.signature_tensors(predictor, kind).items()
        }
        for kind in ("inputs", "outputs")
    }
    signature["method_name"] = tfserving.METHOD_NAME
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(predictor.version)},
        "metadata": {"signature_def": {"signature_def": {tfserving.SIGNATURE: signature}}},
    }


def _tensor(name: str, dtype: str, width: int | None = None) -> dict[str, Any]:
    dims = [{"size": "-1", "name": ""}] + ([{"size": str(width), "name": ""}] if width else [])
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


async def _predict(served: ServedModel, rows: list[Any], key: str) -> Decoded:
    with protocol_errors(key):
        return await served.inference.predict_rows(rows)


_CALLS = error_responses(400, 404, 413, 422, 503)
_LOOKUPS = error_responses(404, 422, 503)

add_model_route(router, "/{name}:predict", predict, "POST", responses=_CALLS, body=PredictBody)
add_model_route(router, "/{name}:regress", regress, "POST", responses=_CALLS, body=ExamplesBody)
add_model_route(router, "/{name}:classify", classify, "POST", responses=_CALLS, body=ExamplesBody)
add_model_route(router, "/{name}/metadata", metadata, "GET", responses=_LOOKUPS)
add_model_route(router, "/{name}", status, "GET", responses=_LOOKUPS)
