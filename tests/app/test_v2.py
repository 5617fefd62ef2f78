"""The Open Inference Protocol v2, driven by a real client: tritonclient over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from app.http.factory import create_app
from tests.helpers.live import live_server
from tests.helpers.service import serve, settings_for

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
MATRIX = np.array(
    [
        [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018],
        [-0.002, -0.045, -0.051, -0.026, -0.009, -0.019, 0.074, -0.039, -0.068, -0.092],
    ]
)


@pytest.fixture(scope="module")
def server(model_root: Path) -> Iterator[str]:
    with live_server(create_app(settings_for(model_root))) as address:
        yield address


@pytest.fixture
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server) as c:
        yield c


def native(model_root: Path, rows: list[dict[str, Any]], name: str = "diabetes") -> dict[str, Any]:
    with serve(model_root, name) as c:
        body: dict[str, Any] = c.post("/predict", json={"instances": rows}).json()
        return body


def test_health_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("diabetes")
    assert client.is_model_ready("diabetes", "1")
    assert client.get_server_metadata()["name"] == "tabserve"
    meta = client.get_model_metadata("diabetes")
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert {i["datatype"] for i in meta["inputs"]} == {"FP32"}
    assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def test_infer_with_one_matrix_equals_predict(
    client: triton.InferenceServerClient, model_root: Path
) -> None:
    tensor = triton.InferInput("features", list(MATRIX.shape), "FP64")
    tensor.set_data_from_numpy(MATRIX, binary_data=False)
    result = client.infer("diabetes", [tensor], request_id="req-7")
    rows = [dict(zip(FEATURES, r, strict=True)) for r in MATRIX.tolist()]
    expected = native(model_root, rows)["predictions"]
    np.testing.assert_allclose(result.as_numpy("predictions"), expected, rtol=1e-12)
    assert result.get_response()["id"] == "req-7"


def test_infer_with_a_tensor_per_feature_and_bytes_categories(
    client: triton.InferenceServerClient, model_root: Path
) -> None:
    rows = [
        {"age": 35.0, "income": 72000.0, "colour": "red", "member": "true", "rooms": "4"},
        {"age": 61.0, "income": 38000.0, "colour": "turquoise", "member": "false", "rooms": "2"},
    ]
    inputs = []
    for name in ("age", "income"):
        t = triton.InferInput(name, [2], "FP32")
        t.set_data_from_numpy(
            np.array([r[name] for r in rows], dtype=np.float32), binary_data=False
        )
        inputs.append(t)
    for name in ("colour", "member", "rooms"):
        t = triton.InferInput(name, [2], "BYTES")
        t.set_data_from_numpy(np.array([r[name] for r in rows], dtype=object), binary_data=False)
        inputs.append(t)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=False)]
    result = client.infer("labels", inputs, outputs=outputs)
    expected = native(model_root, rows, "labels")
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-6
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]


def test_unknown_model_is_a_404_error(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="model 'nope' is not served"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ([{"name": "features", "shape": [1, 10], "datatype": "INT8", "data": [0] * 10}],
         "input 'features': a single [N, F] tensor must be FP32 or FP64, not INT8"),
        ([{"name": "features", "shape": [2, 10], "datatype": "FP32", "data": [0.0] * 10}],
         "input 'features': shape [2, 10] holds 20 values but data has 10"),
        ([{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [0.0] * 3}],
         "input 'features': shape must be [N, 10] (features: age, sex, bmi, bp, s1, s2, s3, s4, s5, s6), not [1, 3]"),
        ([{"name": f, "shape": [1], "datatype": "FP32", "data": [0.0]} for f in FEATURES[:9]]
         + [{"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
         "unknown inputs: colour; inputs: age, sex, bmi, bp, s1, s2, s3, s4, s5, s6"),
        ([{"name": f, "shape": [1], "datatype": "FP32", "data": [0.0]} for f in FEATURES[:9]],
         "missing inputs: s6"),
        ([{"name": f, "shape": [1], "datatype": "BYTES" if f == "bmi" else "FP32",
           "data": ["fat" if f == "bmi" else 0.0]} for f in FEATURES],
         "input 'bmi', row 0: 'fat' is not a number"),
        ([{"name": f, "shape": [1], "datatype": "FP32",
           "data": ["fat" if f == "bmi" else 0.0]} for f in FEATURES],
         "input 'bmi', row 0: Input should be a valid number"),
        ([], "inputs: List should have at least 1 item after validation, not 0"),
        ([{"name": "features", "shape": [-1, 10], "datatype": "FP32", "data": []}],
         "inputs[0].shape[0]: Input should be greater than or equal to 0"),
    ],
)  # fmt: skip
def test_bad_inference_requests_are_400_in_the_protocols_shape(
    model_root: Path, inputs: list[dict[str, Any]], error: str
) -> None:
    with serve(model_root) as c:
        response = c.post("/v2/models/diabetes/infer", json={"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_not_ready_is_503_and_liveness_stays_up(model_root: Path) -> None:
    c = TestClient(create_app(settings_for(model_root)))  # lifespan not run: nothing loaded
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").status_code == 503
    assert c.post("/v2/models/diabetes/infer", json={}).status_code == 503


def test_parameters_are_accepted_and_nested_int_data_is_flattened(model_root: Path) -> None:
    row = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    body = {
        "id": "p-1",
        "parameters": {"priority": 1},
        "inputs": [
            {"name": f, "shape": [2], "datatype": "INT64", "data": [[v], [v]],
             "parameters": {"content_type": "np"}}
            for f, v in zip(FEATURES, row, strict=True)
        ],
    }  # fmt: skip
    with serve(model_root) as c:
        response = c.post("/v2/models/diabetes/versions/1/infer", json=body)
        expected = c.post(
            "/predict", json={"instances": [dict(zip(FEATURES, row, strict=True))] * 2}
        ).json()["predictions"]
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "p-1"
    assert answer["model_version"] == "1"
    assert answer["outputs"] == [
        {"name": "predictions", "datatype": "FP64", "shape": [2], "data": expected}
    ]
