"""The Open Inference Protocol v2 (KServe, Triton, MLServer clients): health, metadata, infer.

Inputs are either one FP32/FP64 tensor of shape [N, F] in the bundle's feature order, or one
tensor per feature named after it with shape [N]; `data` flat or nested, row-major. Errors are
`{"error": "..."}`: 400 for a bad request, 404 for an unknown model, 503 when not ready.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.bundle import NumericFeature
from app.errors import BadRequest, InvalidInput, shown
from app.http.codecs.json_body import json_object, validated_rows
from app.http.dependencies import service_state
from app.http.routes.predict import json_response
from app.http.schemas import error_responses
from app.http.versioned_routes import add_model_route
from app.model.state import ServedModel

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])

SERVER_NAME = "tabserve"
SERVER_VERSION = "0.1.0"
_NUMBER_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                 "UINT32", "UINT64"}  # fmt: skip
_FEATURE_TYPES = _NUMBER_TYPES | {"BYTES", "BOOL"}


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", responses=error_responses(503))
async def ready(request: Request) -> dict[str, bool]:
    service_state(request).require_ready()  # 503 until every model is loaded, and draining
    return {"ready": True}


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []}


async def model_metadata(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    """Platform, one input per feature ([-1]) and the outputs, with datatypes and shapes."""
    predictor = service_state(request).require(name, version).predictor
    inputs = [
        {
            "name": f.name,
            "datatype": "FP32" if isinstance(f, NumericFeature) else "BYTES",
            "shape": [-1],
        }
        for f in predictor.stats.features
    ]
    return {
        "name": name,
        "versions": [str(predictor.version)],
        "platform": "tensorflow_savedmodel" if predictor.runtime.name == "savedmodel" else "tflite",
        "inputs": inputs,
        "outputs": _output_specs(predictor.metadata.classes),
    }


async def model_ready(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    service_state(request).require_ready(name, version)
    return {"name": name, "ready": True}


async def infer(request: Request, name: str, version: int | None = None) -> Response:
    served = service_state(request).require(name, version)
    body = json_object(await request.body())
    rows = _rows(served, body.get("inputs"))
    try:
        decoded = await served.inference.predict_rows(rows)
    except InvalidInput as exc:  # a value the model cannot take: the protocol's 400
        raise BadRequest(exc.message, exc.details) from None
    n = len(decoded.values)
    if decoded.probabilities is None:
        tensors: dict[str, dict[str, Any]] = {
            "predictions": {"datatype": "FP64", "shape": [n], "data": decoded.values}
        }
    else:
        k = decoded.probabilities.shape[1]
        tensors = {
            "label": {"datatype": "BYTES", "shape": [n], "data": [str(v) for v in decoded.values]},
            "probabilities": {
                "datatype": "FP64",
                "shape": [n, k],
                "data": decoded.probabilities.ravel(),
            },
        }
    wanted = _wanted_outputs(body.get("outputs"), tensors)
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": str(served.predictor.version),
        "outputs": [{"name": o, **tensors[o]} for o in wanted],
    }
    if "id" in body:
        answer["id"] = body["id"]
    return json_response(answer)


def _output_specs(classes: list[Any] | None) -> list[dict[str, Any]]:
    if classes is None:
        return [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    return [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]},
    ]


def _rows(served: ServedModel, inputs: object) -> list[dict[str, Any]]:
    """The request's tensors -> rows of named features, validated against the model."""
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    features = served.predictor.features
    tensors = {t.get("name"): t for t in inputs if isinstance(t, dict)}
    if len(tensors) != len(inputs):
        raise BadRequest("every input must be an object with a unique 'name'")
    if len(inputs) == 1 and next(iter(tensors)) not in features:
        columns = _matrix_columns(next(iter(tensors.values())), features)
    else:
        if unknown := sorted(str(t) for t in set(tensors) - set(features)):
            raise BadRequest(
                f"unknown inputs: {', '.join(map(shown, unknown))}; inputs: {', '.join(features)}"
            )
        if missing := [f for f in features if f not in tensors]:
            raise BadRequest(f"missing inputs: {', '.join(missing)}")
        columns = {f: _vector(tensors[f]) for f in features}
        lengths = {len(c) for c in columns.values()}
        if len(lengths) != 1:
            raise BadRequest(f"inputs differ in length: {sorted(lengths)}")
    rows = [dict(zip(columns, cells, strict=True)) for cells in zip(*columns.values(), strict=True)]
    try:
        return validated_rows(served.request_model, rows)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"]  # ("instances", row, feature)
        if len(where) == 3:
            raise BadRequest(f"input {where[2]!r}, row {where[1]}: {first['msg']}") from None
        raise BadRequest(first["msg"]) from None


def _matrix_columns(tensor: dict[str, Any], features: list[str]) -> dict[str, list[Any]]:
    """One [N, F] number tensor in feature order -> columns by feature."""
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if datatype not in ("FP32", "FP64"):
        raise BadRequest(
            f"input {name!r}: a single [N, F] tensor must be FP32 or FP64, not {datatype}"
        )
    if not (isinstance(shape, list) and len(shape) == 2 and shape[1] == len(features)):
        raise BadRequest(
            f"input {name!r}: shape must be [N, {len(features)}] (features: "
            f"{', '.join(features)}), not {shape}"
        )
    data = _flat(tensor, shape)
    n = shape[0]
    return {f: data[j :: len(features)][:n] for j, f in enumerate(features)}


def _vector(tensor: dict[str, Any]) -> list[Any]:
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if datatype not in _FEATURE_TYPES:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not supported")
    if not (isinstance(shape, list) and len(shape) == 1):
        raise BadRequest(f"input {name!r}: shape must be [N], not {shape}")
    return _flat(tensor, shape)


def _flat(tensor: dict[str, Any], shape: list[Any]) -> list[Any]:
    """`data`, nested or flat, as one row-major list whose length matches `shape`."""
    data = tensor.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"input {tensor.get('name')!r}: 'data' must be a list")
    flat: list[Any] = []
    stack = [data]
    while stack:  # iterative flatten, row-major
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise BadRequest(f"input {tensor.get('name')!r}: shape must be non-negative integers")
    if len(flat) != math.prod(shape):
        raise BadRequest(
            f"input {tensor.get('name')!r}: shape {shape} holds {math.prod(shape)} values "
            f"but data has {len(flat)}"
        )
    return flat


def _wanted_outputs(requested: object, tensors: dict[str, Any]) -> list[str]:
    if requested is None:
        return list(tensors)
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    names = [o.get("name") for o in requested]
    if unknown := [n for n in names if n not in tensors]:
        raise BadRequest(
            f"unknown outputs: {', '.join(map(shown, unknown))}; outputs: {', '.join(tensors)}"
        )
    return [str(n) for n in names]


class InputTensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(description="A feature's name, or any name for one (n, features) matrix")
    shape: list[int]
    datatype: str = Field(description="FP32, FP64, INT64, ... or BYTES for categories")
    data: list[Any] = Field(description="Row-major values, flat or nested")
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] | None = None


class InferBody(BaseModel):
    """An Open Inference Protocol v2 inference request (JSON tensors)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None


_LOOKUPS = error_responses(404, 422, 503)
_CALLS = error_responses(400, 404, 413, 422, 503)

add_model_route(router, "/models/{name}", model_metadata, "GET", responses=_LOOKUPS)
add_model_route(router, "/models/{name}/ready", model_ready, "GET", responses=_LOOKUPS)
add_model_route(router, "/models/{name}/infer", infer, "POST", responses=_CALLS, body=InferBody)
