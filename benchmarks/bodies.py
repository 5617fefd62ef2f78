"""Request bodies: real rows of scikit-learn's diabetes data, every feature present; as JSON for
`POST /predict` and as serialized v2 ModelInferRequests for gRPC."""

from __future__ import annotations

import json
from pathlib import Path

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
TENSOR = "rows"
"""The name of the one [N, 10] input tensor of a gRPC request: not a feature's name."""


def diabetes_rows() -> list[dict[str, float]]:
    """The 442 rows of the diabetes features (scikit-learn's scaled version, as trained on)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    names = list(data.feature_names)
    if tuple(names) != FEATURES:
        raise RuntimeError(f"unexpected diabetes features: {names}")
    return [dict(zip(names, map(float, row), strict=True)) for row in data.data]


def body(rows: list[dict[str, float]], n: int) -> bytes:
    """`{"instances": [...]}` with `n` rows, cycling through `rows`."""
    instances = [rows[i % len(rows)] for i in range(n)]
    return json.dumps({"instances": instances}, separators=(",", ":")).encode()


def write_bodies(directory: Path, sizes: list[int]) -> dict[int, Path]:
    """Write one body file per row count into `directory`; returns their paths by size."""
    rows = diabetes_rows()
    paths = {}
    for n in sizes:
        path = directory / f"body-{n}.json"
        path.write_bytes(body(rows, n))
        paths[n] = path
    return paths


def infer_request(rows: list[dict[str, float]], n: int, model_name: str) -> bytes:
    """A v2 ModelInferRequest with one FP32 [n, 10] tensor (the features in training's order)
    in `raw_input_contents`, cycling through `rows`, serialized."""
    import numpy as np

    from app.grpc.protos import oip_v2_pb2 as pb

    matrix = [[rows[i % len(rows)][f] for f in FEATURES] for i in range(n)]
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=TENSOR, datatype="FP32", shape=[n, len(FEATURES)]
    )
    request = pb.ModelInferRequest(
        model_name=model_name,
        inputs=[tensor],
        raw_input_contents=[np.asarray(matrix, dtype="<f4").tobytes()],
    )
    return request.SerializeToString()


def write_infer_requests(directory: Path, sizes: list[int], model_name: str) -> dict[int, Path]:
    """As `write_bodies`, for gRPC: one serialized ModelInferRequest file per row count."""
    rows = diabetes_rows()
    paths = {}
    for n in sizes:
        path = directory / f"infer-{n}.pb"
        path.write_bytes(infer_request(rows, n, model_name))
        paths[n] = path
    return paths
