"""Binary tensors of the two gRPC protocols: read into the plain values the REST codecs
validate, and written from the predictions.

Numbers come as typed repeated fields or as little-endian bytes (v2's `raw_input_contents`,
TensorFlow's `tensor_content`); text as UTF-8 bytes. A NaN or an infinity in a number
tensor is a missing value, as the cell rule reads a NaN or infinite cell everywhere else
(JSON bodies, which cannot carry either, use null).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.bundle import Decoded
from app.errors import BadRequest, shown
from app.grpc.protos import oip_v2_pb2 as v2
from app.grpc.protos import tf_serving_pb2 as tfs
from app.http.codecs.text_cells import text_number
from app.http.codecs.v2 import InputTensor

# v2 datatype -> (the `contents` field that carries it, its little-endian layout when raw)
_V2_TYPES: dict[str, tuple[str | None, str | None]] = {
    "BOOL": ("bool_contents", "?"),
    "INT8": ("int_contents", "<i1"),
    "INT16": ("int_contents", "<i2"),
    "INT32": ("int_contents", "<i4"),
    "INT64": ("int64_contents", "<i8"),
    "UINT8": ("uint_contents", "<u1"),
    "UINT16": ("uint_contents", "<u2"),
    "UINT32": ("uint_contents", "<u4"),
    "UINT64": ("uint64_contents", "<u8"),
    "FP16": (None, "<f2"),
    "FP32": ("fp32_contents", "<f4"),
    "FP64": ("fp64_contents", "<f8"),
    "BYTES": ("bytes_contents", None),
}

# TensorFlow dtype -> (the repeated field that carries it, its layout in `tensor_content`)
_TF_TYPES: dict[int, tuple[str, str]] = {
    tfs.DT_FLOAT: ("float_val", "<f4"),
    tfs.DT_DOUBLE: ("double_val", "<f8"),
    tfs.DT_HALF: ("half_val", "<f2"),
    tfs.DT_INT8: ("int_val", "<i1"),
    tfs.DT_INT16: ("int_val", "<i2"),
    tfs.DT_INT32: ("int_val", "<i4"),
    tfs.DT_INT64: ("int64_val", "<i8"),
    tfs.DT_UINT8: ("int_val", "<u1"),
    tfs.DT_UINT16: ("int_val", "<u2"),
    tfs.DT_UINT32: ("uint32_val", "<u4"),
    tfs.DT_UINT64: ("uint64_val", "<u8"),
    tfs.DT_BOOL: ("bool_val", "?"),
}

_LENGTH = 4  # a raw BYTES element: 4-byte little-endian length, then the bytes


# Open Inference Protocol v2


def v2_inputs(request: v2.ModelInferRequest) -> list[InputTensor]:
    """The request's input tensors with their values, from `contents` or from
    `raw_input_contents` (one entry per input, in order)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    tensors = []
    for i, tensor in enumerate(request.inputs):
        where = f"input {shown(tensor.name)!r}"
        if tensor.datatype not in _V2_TYPES:
            raise BadRequest(f"{where}: datatype {shown(tensor.datatype)!r} is not supported")
        if any(d < 0 for d in tensor.shape):
            raise BadRequest(f"{where}: shape {list(tensor.shape)} has a negative dimension")
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"{where}: give contents or raw_input_contents, not both")
            data = _raw_v2(where, tensor.datatype, raw[i])
        else:
            data = _contents_v2(where, tensor)
        tensors.append(
            InputTensor.model_construct(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                data=data,
                parameters=None,
            )
        )
    return tensors


def v2_matrix(request: v2.ModelInferRequest, features: Sequence[str]) -> np.ndarray | None:
    """The request's one FP32/FP64 [N, F] tensor of numbers in feature order, as float64
    (NaN or infinity for missing), when that is what it holds and nothing is wrong with it;
    else None, and the row path reads the request and names what is wrong."""
    if len(request.inputs) != 1:
        return None
    tensor, raw = request.inputs[0], request.raw_input_contents
    shape = list(tensor.shape)
    if (
        tensor.name in features
        or tensor.datatype not in ("FP32", "FP64")
        or len(shape) != 2
        or shape[1] != len(features)
    ):
        return None
    layout = "<f4" if tensor.datatype == "FP32" else "<f8"
    if raw:
        if len(raw) != 1 or tensor.HasField("contents"):
            return None
        if len(raw[0]) != math.prod(shape) * np.dtype(layout).itemsize:
            return None
        array = np.frombuffer(raw[0], dtype=layout)
    else:
        field = "fp32_contents" if tensor.datatype == "FP32" else "fp64_contents"
        values = getattr(tensor.contents, field)
        if len(values) != math.prod(shape):
            return None
        array = np.asarray(values, dtype=layout)
    return array.reshape(shape).astype(np.float64)


def _contents_v2(where: str, tensor: v2.ModelInferRequest.InferInputTensor) -> list[Any]:
    field, layout = _V2_TYPES[tensor.datatype]
    if field is None:
        raise BadRequest(f"{where}: {tensor.datatype} is sent in raw_input_contents only")
    values = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return _texts(where, values)
    return _plain(np.asarray(values, dtype=layout))


def _raw_v2(where: str, datatype: str, blob: bytes) -> list[Any]:
    _, layout = _V2_TYPES[datatype]
    if layout is None:
        return _texts(where, _split_bytes(where, blob))
    size = np.dtype(layout).itemsize
    if len(blob) % size:
        raise BadRequest(f"{where}: {len(blob)} raw bytes are not a whole number of {datatype}")
    return _plain(np.frombuffer(blob, dtype=layout))


def _split_bytes(where: str, blob: bytes) -> list[bytes]:
    """A raw BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    out: list[bytes] = []
    at = 0
    while at < len(blob):
        if at + _LENGTH > len(blob):
            raise BadRequest(f"{where}: raw BYTES end inside an element's length")
        n = int.from_bytes(blob[at : at + _LENGTH], "little")
        at += _LENGTH
        if at + n > len(blob):
            raise BadRequest(f"{where}: raw BYTES element {len(out)} is cut short")
        out.append(blob[at : at + n])
        at += n
    return out


def v2_outputs(
    response: v2.ModelInferResponse, tensors: dict[str, dict[str, Any]], names: Sequence[str]
) -> None:
    """Fill `response` with the named output tensors (as `app.http.codecs.v2.output_tensors`
    gives them), in `contents`."""
    for name in names:
        spec = tensors[name]
        out = response.outputs.add(name=name, datatype=spec["datatype"], shape=spec["shape"])
        if spec["datatype"] == "BYTES":
            out.contents.bytes_contents.extend(str(v).encode() for v in spec["data"])
        else:
            out.contents.fp64_contents.extend(np.asarray(spec["data"], dtype=np.float64).tolist())


def v2_raw_outputs(
    response: v2.ModelInferResponse, tensors: dict[str, dict[str, Any]], names: Sequence[str]
) -> None:
    """As `v2_outputs`, with the values in `raw_output_contents`, as Triton answers (and as
    tritonclient reads numbers)."""
    for name in names:
        spec = tensors[name]
        response.outputs.add(name=name, datatype=spec["datatype"], shape=spec["shape"])
        if spec["datatype"] == "BYTES":
            texts = [str(v).encode() for v in spec["data"]]
            blob = b"".join(len(t).to_bytes(_LENGTH, "little") + t for t in texts)
        else:
            blob = np.asarray(spec["data"], dtype="<f8").tobytes()
        response.raw_output_contents.append(blob)


# TF Serving


def tf_values(where: str, tensor: tfs.TensorProto) -> tuple[list[int], list[Any]]:
    """A TensorProto -> (its shape, its values flat in row-major order, numbers as Python
    values with None for missing). One value with a larger shape fills it, as TensorFlow
    reads such a proto."""
    if tensor.dtype != tfs.DT_STRING:
        shape, array = tf_array(where, tensor)
        return shape, _plain(array.ravel())
    shape = _tf_shape(where, tensor)
    values = _texts(where, tensor.string_val)
    n = math.prod(shape)
    if len(values) == 1 and n != 1:
        values = values * n
    if len(values) != n:
        raise BadRequest(f"{where}: shape {shape} holds {n} values, the tensor {len(values)}")
    return shape, values


def tf_array(where: str, tensor: tfs.TensorProto) -> tuple[list[int], np.ndarray]:
    """A TensorProto of numbers -> (its shape, its values as an array of that shape)."""
    shape = _tf_shape(where, tensor)
    if tensor.dtype not in _TF_TYPES:
        raise BadRequest(f"{where}: dtype {tfs.DataType.Name(tensor.dtype)} is not supported")
    field, layout = _TF_TYPES[tensor.dtype]
    if tensor.tensor_content:
        size = np.dtype(layout).itemsize
        if len(tensor.tensor_content) % size:
            raise BadRequest(f"{where}: tensor_content is not a whole number of values")
        array = np.frombuffer(tensor.tensor_content, dtype=layout)
    elif tensor.dtype == tfs.DT_HALF:  # half_val holds each value's 16 bits
        array = np.asarray(tensor.half_val, dtype=np.uint16).view(np.float16)
    else:
        array = np.asarray(getattr(tensor, field), dtype=layout)
    n = math.prod(shape)
    if array.size == 1 and n != 1:
        array = np.full(n, array[0])
    if array.size != n:
        raise BadRequest(f"{where}: shape {shape} holds {n} values, the tensor {array.size}")
    return shape, array.reshape(shape)


def _tf_shape(where: str, tensor: tfs.TensorProto) -> list[int]:
    if tensor.tensor_shape.unknown_rank:
        raise BadRequest(f"{where}: the shape must be known")
    shape = [d.size for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise BadRequest(f"{where}: shape {shape} has a negative dimension")
    return shape


def tf_numbers_from_text(where: str, values: list[Any]) -> list[Any]:
    """A numeric feature sent as DT_STRING: each cell read by the cell rule."""
    return [
        text_number(v, f"{where}, row {row}") if isinstance(v, str) else v
        for row, v in enumerate(values)
    ]


def example_cells(where: str, example: tfs.Example) -> dict[str, Any]:
    """A tf.Example -> one cell per feature; each feature holds one value, or none (missing)."""
    cells: dict[str, Any] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is None:
            cells[name] = None
            continue
        values = getattr(feature, kind).value
        if len(values) > 1:
            raise BadRequest(f"{where}.{shown(name)}: {len(values)} values; a feature takes one")
        if not values:
            cells[name] = None
        elif kind == "bytes_list":
            cells[name] = _texts(f"{where}.{shown(name)}", values)[0]
        else:
            layout = "<f4" if kind == "float_list" else "<i8"
            cells[name] = _plain(np.asarray(values, dtype=layout))[0]
    return cells


def tf_tensor(values: Sequence[Any] | np.ndarray, shape: Sequence[int]) -> tfs.TensorProto:
    """Numbers as a DT_DOUBLE tensor (the predictions' own precision), text as DT_STRING."""
    tensor = tfs.TensorProto(tensor_shape=tf_shape(shape))
    if isinstance(values, np.ndarray) or all(isinstance(v, float) for v in values):
        tensor.dtype = tfs.DT_DOUBLE
        tensor.tensor_content = np.asarray(values, dtype="<f8").tobytes()
    else:
        tensor.dtype = tfs.DT_STRING
        tensor.string_val.extend(str(v).encode() for v in values)
    return tensor


def tf_shape(shape: Sequence[int]) -> tfs.TensorShapeProto:
    return tfs.TensorShapeProto(dim=[tfs.TensorShapeProto.Dim(size=d) for d in shape])


def output_arrays(decoded: Decoded) -> dict[str, tuple[Sequence[Any] | np.ndarray, list[int]]]:
    """The outputs by name with their shapes: `predictions` [N] for a regression model,
    `label` [N] and `probabilities` [N, K] for a classifier."""
    n = len(decoded.values)
    if decoded.probabilities is None:
        return {"predictions": (decoded.values, [n])}
    return {
        "label": ([str(v) for v in decoded.values], [n]),
        "probabilities": (decoded.probabilities, list(decoded.probabilities.shape)),
    }


# Shared


def _plain(array: np.ndarray) -> list[Any]:
    """Numbers as Python values; a NaN or an infinity becomes None (missing)."""
    if array.dtype.kind == "f":
        array = array.astype(np.float64)
        values: list[Any] = array.tolist()
        finite = np.isfinite(array)
        if not finite.all():
            for i in np.flatnonzero(~finite):
                values[i] = None
        return values
    result: list[Any] = array.tolist()
    return result


def _texts(where: str, values: Sequence[bytes]) -> list[str]:
    try:
        return [v.decode() for v in values]
    except UnicodeDecodeError:
        row = next(i for i, v in enumerate(values) if not _is_utf8(v))
        raise BadRequest(f"{where}, element {row}: not UTF-8 text") from None


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True
