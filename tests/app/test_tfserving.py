"""TF Serving's REST API, replayed as its documentation shows it, and several models by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers.service import serve

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROWS: list[dict[str, Any]] = [
    dict(
        zip(
            FEATURES,
            [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018],
            strict=True,
        )
    ),
    dict(
        zip(
            FEATURES,
            [-0.002, -0.045, None, -0.026, -0.009, -0.019, 0.074, -0.039, -0.068, -0.092],
            strict=True,
        )
    ),
]
LABEL_ROW = {"age": 35, "income": 72000, "colour": "red", "member": True, "rooms": 4}


@pytest.fixture(scope="module")
def tf_client(model_root: Path) -> Iterator[TestClient]:
    with serve(model_root) as client:
        yield client


def native(client: TestClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/predict", json={"instances": rows}).json()
    return body


def test_row_format_with_named_features_equals_predict(tf_client: TestClient) -> None:
    response = tf_client.post("/v1/models/diabetes:predict", json={"instances": ROWS})
    assert response.status_code == 200
    assert response.json() == {"predictions": native(tf_client, ROWS)["predictions"]}


def test_row_format_with_value_lists_in_feature_order(tf_client: TestClient) -> None:
    lists = [[row[f] for f in FEATURES] for row in ROWS]
    response = tf_client.post("/v1/models/diabetes/versions/1:predict", json={"instances": lists})
    assert response.json() == {"predictions": native(tf_client, ROWS)["predictions"]}


def test_columnar_format_answers_outputs(tf_client: TestClient) -> None:
    inputs = {f: [row[f] for row in ROWS] for f in FEATURES}
    response = tf_client.post("/v1/models/diabetes:predict", json={"inputs": inputs})
    assert response.json() == {"outputs": native(tf_client, ROWS)["predictions"]}


def test_regress_merges_context_into_examples(tf_client: TestClient) -> None:
    context = {"sex": 0.051, "bp": 0.022}
    examples = [{k: v for k, v in row.items() if k not in context} for row in ROWS[:1]]
    response = tf_client.post(
        "/v1/models/diabetes:regress", json={"context": context, "examples": examples}
    )
    assert response.status_code == 200
    assert response.json() == {"results": native(tf_client, ROWS[:1])["predictions"]}


def test_classifier_by_name_predict_and_classify(tf_client: TestClient) -> None:
    expected = tf_client.post("/v1/models/labels:predict", json={"instances": [LABEL_ROW]}).json()[
        "predictions"
    ][0]
    assert expected["label"] in ("high", "low", "mid")
    assert sum(expected["probabilities"]) == pytest.approx(1.0)
    classify = tf_client.post("/v1/models/labels:classify", json={"examples": [LABEL_ROW]}).json()
    assert classify["results"][0] == [
        [label, p]
        for label, p in zip(["high", "low", "mid"], expected["probabilities"], strict=True)
    ]
    wrong = tf_client.post("/v1/models/labels:regress", json={"examples": [LABEL_ROW]})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "model 'labels' is a classifier: use :classify or :predict"


def test_model_status_and_metadata(tf_client: TestClient) -> None:
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert tf_client.get("/v1/models/diabetes").json() == expected
    assert tf_client.get("/v1/models/diabetes/versions/1").json() == expected
    meta = tf_client.get("/v1/models/labels/metadata").json()
    assert meta["model_spec"] == {"name": "labels", "signature_name": "", "version": "1"}
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert {name: t["dtype"] for name, t in signature["inputs"].items()} == {
        "age": "DT_FLOAT",
        "income": "DT_FLOAT",
        "colour": "DT_STRING",
        "member": "DT_STRING",
        "rooms": "DT_STRING",
    }
    assert signature["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"] == "3"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/v1/models/nope", None, 404, "model 'nope' is not served; models: diabetes, labels, messy"),
        ("POST", "/v1/models/diabetes/versions/7:predict", {"instances": ROWS}, 404,
         "version 7 of model 'diabetes' is not served; versions: 1"),
        ("POST", "/v1/models/diabetes:predict", {"rows": []}, 400,
         "request must have exactly one of 'instances' and 'inputs'"),
        ("POST", "/v1/models/diabetes:predict", {"instances": [[1.0, 2.0]]}, 400,
         "instance 0 has 2 values; the model takes 10 (age, sex, bmi, bp, s1, s2, s3, s4, s5, s6)"),
        ("POST", "/v1/models/diabetes:predict", {"instances": [{**ROWS[0], "age": "old"}]}, 400,
         "instances[0].age: Input should be a valid number"),
        ("POST", "/v1/models/diabetes:predict", {"inputs": {"age": [1.0], "sex": [1.0, 2.0]}}, 400,
         "every column in 'inputs' must be a list, all of the same length"),
        ("POST", "/v1/models/diabetes:predict", {"inputs": {"age": [1.0]}}, 400,
         "inputs[0].sex: Field required (and 8 more)"),
        ("POST", "/v1/models/diabetes:classify", {"examples": ROWS}, 400,
         "model 'diabetes' is a regression model: use :regress or :predict"),
        ("POST", "/v1/models/diabetes:predict", [1, 2], 400, "request body must be a JSON object"),
    ],
)  # fmt: skip
def test_errors_use_tf_servings_shape_and_status(
    tf_client: TestClient, method: str, path: str, body: object, status: int, error: str
) -> None:
    response = tf_client.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_not_json_is_400(tf_client: TestClient) -> None:
    response = tf_client.post("/v1/models/diabetes:predict", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body is not valid JSON")


def test_every_model_under_the_root_is_served_and_pins_hold(
    model_root: Path, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(model_root / "diabetes", tmp_path / "diabetes")
    shutil.copytree(model_root / "diabetes" / "1", tmp_path / "diabetes" / "2")
    meta = tmp_path / "diabetes" / "2" / "metadata.json"
    meta.write_text(meta.read_text().replace('"version": 1', '"version": 2', 1))
    with serve(tmp_path) as client:
        assert client.get("/readyz").json()["models"] == {"diabetes": 2}
    with serve(tmp_path, model_version=1) as client:
        assert client.get("/readyz").json()["models"] == {"diabetes": 1}
        assert client.get("/v1/models/diabetes/versions/2").status_code == 404
