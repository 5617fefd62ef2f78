"""TF Serving's REST API, as its clients call it: predict, regress, classify, status, metadata.

Rows come as `instances` (objects of named features, or lists in the bundle's feature order)
or `inputs` (columns by feature name); answers are `predictions` or `outputs` to match.
Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown model or version.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.bundle import Decoded, NumericFeature
from app.errors import BadRequest, InvalidInput, validation_failure
from app.http.codecs.json_body import json_object, validated_rows
from app.http.dependencies import service_state
from app.http.routes.predict import json_response
from app.http.schemas import error_responses
from app.http.versioned_routes import add_model_route
from app.model.state import ServedModel

router = APIRouter(prefix="/v1/models", tags=["TF Serving REST API"])


async def predict(request: Request, name: str, version: int | None = None) -> Response:
    """`{"instances": [...]}` -> `{"predictions": [...]}`, `{"inputs": {...}}` -> `{"outputs"}`."""
    served, body = await _request(request, name, version)
    columnar = "inputs" in body
    if columnar == ("instances" in body):
        raise BadRequest("request must have exactly one of 'instances' and 'inputs'")
    decoded = await _predict(served, body, "inputs" if columnar else "instances")
    if decoded.probabilities is None:
        return json_response({"outputs" if columnar else "predictions": decoded.values})
    if columnar:
        return json_response(
            {"outputs": {"label": decoded.values, "probabilities": decoded.probabilities}}
        )
    rows = [
        {"label": label, "probabilities": p}
        for label, p in zip(decoded.values, decoded.probabilities.tolist(), strict=True)
    ]
    return json_response({"predictions": rows})


async def regress(request: Request, name: str, version: int | None = None) -> Response:
    """`{"examples": [...], "context": {...}}` -> `{"results": [value, ...]}`."""
    served, body = await _request(request, name, version)
    if served.predictor.metadata.task != "regression":
        raise BadRequest(f"model {name!r} is a classifier: use :classify or :predict")
    decoded = await _predict(served, _with_context(body), "examples")
    return json_response({"results": decoded.values})


async def classify(request: Request, name: str, version: int | None = None) -> Response:
    """`{"examples": [...]}` -> `{"results": [[[label, score], ...], ...]}`, labels as text."""
    served, body = await _request(request, name, version)
    classes = served.predictor.metadata.classes
    if classes is None:
        raise BadRequest(f"model {name!r} is a regression model: use :regress or :predict")
    decoded = await _predict(served, _with_context(body), "examples")
    labels = [str(c) for c in classes]
    probabilities = [] if decoded.probabilities is None else decoded.probabilities.tolist()
    results = [[[label, p] for label, p in zip(labels, row, strict=True)] for row in probabilities]
    return json_response({"results": results})


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
    inputs = {
        f.name: _tensor(f.name, "DT_FLOAT" if isinstance(f, NumericFeature) else "DT_STRING")
        for f in predictor.stats.features
    }
    if predictor.metadata.classes is None:
        outputs = {"predictions": _tensor("predictions", "DT_FLOAT")}
    else:
        width = len(predictor.metadata.classes)
        outputs = {
            "label": _tensor("label", "DT_STRING"),
            "probabilities": _tensor("probabilities", "DT_FLOAT", width),
        }
    signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(predictor.version)},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    }


def _tensor(name: str, dtype: str, width: int | None = None) -> dict[str, Any]:
    dims = [{"size": "-1", "name": ""}] + ([{"size": str(width), "name": ""}] if width else [])
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


async def _request(
    request: Request, name: str, version: int | None
) -> tuple[ServedModel, dict[str, Any]]:
    served = service_state(request).require(name, version)
    return served, json_object(await request.body())


def _with_context(body: dict[str, Any]) -> dict[str, Any]:
    """TF Serving merges `context` features into every example."""
    context = body.get("context") or {}
    examples = body.get("examples")
    if not isinstance(context, dict):
        raise BadRequest("'context' must be an object of features")
    if not isinstance(examples, list):
        raise BadRequest("request must have 'examples', a list of objects")
    if context:
        examples = [{**context, **e} if isinstance(e, dict) else e for e in examples]
    return {"examples": examples}


async def _predict(served: ServedModel, body: dict[str, Any], key: str) -> Decoded:
    """The rows under `key` validated against the model's own features, then predicted."""
    features = served.predictor.features
    given = body[key]
    if key == "inputs":
        if not isinstance(given, dict) or not given:
            raise BadRequest("'inputs' must be an object with one list per feature")
        lengths = {len(v) if isinstance(v, list) else -1 for v in given.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise BadRequest("every column in 'inputs' must be a list, all of the same length")
        columns = given.values()
        rows: Any = [dict(zip(given, cells, strict=True)) for cells in zip(*columns, strict=True)]
    elif isinstance(given, list):
        rows = [_named(row, i, features) for i, row in enumerate(given)]
    else:
        raise BadRequest(f"'{key}' must be a list of rows")
    try:
        valid = validated_rows(served.request_model, rows)
    except ValidationError as exc:
        error = validation_failure(exc.errors())
        raise BadRequest(
            error.message.replace("instances", key),
            [{**d, "loc": d["loc"].replace("instances", key, 1)} for d in error.details],
        ) from None
    try:
        return await served.inference.predict_rows(valid)
    except InvalidInput as exc:  # a value the model cannot take: the protocol's 400
        raise BadRequest(exc.message.replace("instances", key, 1), exc.details) from None


def _named(row: object, index: int, features: list[str]) -> object:
    """A row given as a list of values, in the bundle's feature order -> named features."""
    if not isinstance(row, list):
        return row
    if len(row) != len(features):
        raise BadRequest(
            f"instance {index} has {len(row)} values; the model takes {len(features)} "
            f"({', '.join(features)})"
        )
    return dict(zip(features, row, strict=True))


class PredictBody(BaseModel):
    """TF Serving's predict request: rows (`instances`) or columns (`inputs`), not both."""

    model_config = ConfigDict(extra="allow")
    signature_name: str | None = None
    instances: list[Any] | None = Field(None, description="Rows: objects by feature, or lists")
    inputs: dict[str, list[Any]] | list[Any] | None = Field(
        None, description="Columns: a list of values per feature"
    )


class ExamplesBody(BaseModel):
    """TF Serving's regress and classify request: examples, with optional shared context."""

    model_config = ConfigDict(extra="allow")
    signature_name: str | None = None
    examples: list[dict[str, Any]]
    context: dict[str, Any] | None = Field(None, description="Features shared by every example")


_CALLS = error_responses(400, 404, 413, 422, 503)
_LOOKUPS = error_responses(404, 422, 503)

add_model_route(router, "/{name}:predict", predict, "POST", responses=_CALLS, body=PredictBody)
add_model_route(router, "/{name}:regress", regress, "POST", responses=_CALLS, body=ExamplesBody)
add_model_route(router, "/{name}:classify", classify, "POST", responses=_CALLS, body=ExamplesBody)
add_model_route(router, "/{name}/metadata", metadata, "GET", responses=_LOOKUPS)
add_model_route(router, "/{name}", status, "GET", responses=_LOOKUPS)
