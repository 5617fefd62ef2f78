"""Open Inference Protocol v2 JSON tensors: the request as declared, rows from its inputs, and
the output tensors.

Inputs are either one FP32/FP64 tensor of shape [N, F] in the bundle's feature order, or one
tensor per feature named after it with shape [N]; `data` flat or nested, row-major. A BYTES
tensor of a numeric feature carries text cells, read by the bundle's cell rule.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from app.bundle import Decoded, NumericFeature
from app.errors import BadRequest, shown
from app.http.codecs.json_body import validated_rows
from app.http.codecs.text_cells import text_number
from app.model.state import ServedModel

SERVER_NAME = "tabserve"
SERVER_VERSION = "0.1.0"

_NUMBER_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                 "UINT32", "UINT64"}  # fmt: skip
_FEATURE_TYPES = _NUMBER_TYPES | {"BYTES", "BOOL"}


class InputTensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(description="A feature's name, or any name for one (n, features) matrix")
    shape: list[NonNegativeInt]
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
    inputs: list[InputTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


def rows(served: ServedModel, inputs: list[InputTensor]) -> list[dict[str, Any]]:
    """The request's tensors -> rows of named features, validated against the model."""
    features = served.predictor.features
    tensors = {t.name: t for t in inputs}
    if len(tensors) != len(inputs):
        raise BadRequest("every input must have a unique 'name'")
    if len(inputs) == 1 and inputs[0].name not in features:
        columns = _matrix_columns(inputs[0], features)
    else:
        if unknown := sorted(set(tensors) - set(features)):
            raise BadRequest(
                f"unknown inputs: {', '.join(map(shown, unknown))}; inputs: {', '.join(features)}"
            )
        if missing := [f for f in features if f not in tensors]:
            raise BadRequest(f"missing inputs: {', '.join(missing)}")
        numeric = {f.name for f in served.predictor.stats.features if isinstance(f, NumericFeature)}
        columns = {f: _vector(tensors[f], f in numeric) for f in features}
        lengths = {len(c) for c in columns.values()}
        if len(lengths) != 1:
            raise BadRequest(f"inputs differ in length: {sorted(lengths)}")
    table = [
        dict(zip(columns, cells, strict=True)) for cells in zip(*columns.values(), strict=True)
    ]
    try:
        return validated_rows(served.request_model, table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"]  # ("instances", row, feature)
        if len(where) == 3:
            raise BadRequest(f"input {where[2]!r}, row {where[1]}: {first['msg']}") from None
        raise BadRequest(first["msg"]) from None


def output_tensors(decoded: Decoded) -> dict[str, dict[str, Any]]:
    """`predictions` (FP64) for a regression model; `label` and `probabilities` for a
    classifier."""
    n = len(decoded.values)
    if decoded.probabilities is None:
        return {"predictions": {"datatype": "FP64", "shape": [n], "data": decoded.values}}
    k = decoded.probabilities.shape[1]
    return {
        "label": {"datatype": "BYTES", "shape": [n], "data": [str(v) for v in decoded.values]},
        "probabilities": {
            "datatype": "FP64",
            "shape": [n, k],
            "data": decoded.probabilities.ravel(),
        },
    }


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []}


def model_metadata(served: ServedModel) -> dict[str, Any]:
    """Platform, one input per feature ([-1]) and the outputs, with datatypes and shapes."""
    predictor = served.predictor
    inputs = [
        {
            "name": f.name,
            "datatype": "FP32" if isinstance(f, NumericFeature) else "BYTES",
            "shape": [-1],
        }
        for f in predictor.stats.features
    ]
    return {
        "name": predictor.name,
        "versions": [str(predictor.version)],
        "platform": "tensorflow_savedmodel" if predictor.runtime.name == "savedmodel" else "tflite",
        "inputs": inputs,
        "outputs": output_specs(predictor.metadata.classes),
    }


def output_specs(classes: list[Any] | None) -> list[dict[str, Any]]:
    """The outputs as model metadata lists them."""
    if classes is None:
        return [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    return [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]},
    ]


def wanted_outputs(requested: list[RequestedOutput] | None, tensors: dict[str, Any]) -> list[str]:
    if requested is None:
        return list(tensors)
    names = [o.name for o in requested]
    if unknown := [n for n in names if n not in tensors]:
        raise BadRequest(
            f"unknown outputs: {', '.join(map(shown, unknown))}; outputs: {', '.join(tensors)}"
        )
    return names


def _matrix_columns(tensor: InputTensor, features: list[str]) -> dict[str, list[Any]]:
    """One [N, F] number tensor in feature order -> columns by feature."""
    name, datatype, shape = tensor.name, tensor.datatype, tensor.shape
    if datatype not in ("FP32", "FP64"):
        raise BadRequest(
            f"input {name!r}: a single [N, F] tensor must be FP32 or FP64, not {datatype}"
        )
    if not (len(shape) == 2 and shape[1] == len(features)):
        raise BadRequest(
            f"input {name!r}: shape must be [N, {len(features)}] (features: "
            f"{', '.join(features)}), not {shape}"
        )
    data = _flat(tensor)
    n = shape[0]
    return {f: data[j :: len(features)][:n] for j, f in enumerate(features)}


def _vector(tensor: InputTensor, numeric: bool) -> list[Any]:
    name, datatype, shape = tensor.name, tensor.datatype, tensor.shape
    if datatype not in _FEATURE_TYPES:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not supported")
    if len(shape) != 1:
        raise BadRequest(f"input {name!r}: shape must be [N], not {shape}")
    data = _flat(tensor)
    if numeric and datatype == "BYTES":
        # Text cells: read by the cell rule; anything else is left for the row validation.
        return [
            text_number(cell, f"input {name!r}, row {row}") if isinstance(cell, str) else cell
            for row, cell in enumerate(data)
        ]
    return data


def _flat(tensor: InputTensor) -> list[Any]:
    """`data`, nested or flat, as one row-major list whose length matches `shape`."""
    flat: list[Any] = []
    stack: list[Any] = [tensor.data]
    while stack:  # iterative flatten, row-major
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if len(flat) != math.prod(tensor.shape):
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} holds {math.prod(tensor.shape)} "
            f"values but data has {len(flat)}"
        )
    return flat
