"""Bad input gets a 4xx in one JSON shape that says what is wrong and where; state never changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from app.model.loading import load_predictor
from tests.helpers.service import settings_for

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def row(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(FEATURES, 0.01)
    values.update(changes)
    return {k: v for k, v in values.items() if v is not ...}


def test_missing_features_are_named(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [row(), row(bmi=..., s6=...)]})
    assert response.status_code == 422
    assert response.json() == {
        "error": "instances[1].bmi: Field required (and 1 more)",
        "details": [
            {"loc": "instances[1].bmi", "message": "Field required"},
            {"loc": "instances[1].s6", "message": "Field required"},
        ],
    }


def test_unknown_features_are_named(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [row(bmj=0.1, age=...)]})
    assert response.status_code == 422
    assert response.json()["details"] == [
        {"loc": "instances[0].age", "message": "Field required"},
        {"loc": "instances[0].bmj", "message": "Extra inputs are not permitted"},
    ]


def test_every_bad_row_is_reported_up_to_a_limit(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [row(x=1), row(), row(y=2)]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "instances[0].x: Extra inputs are not permitted (and 1 more)"
    assert [d["loc"] for d in body["details"]] == ["instances[0].x", "instances[2].y"]
    many = client.post("/predict", json={"instances": [{}] * 100}).json()
    assert many["error"] == "instances[0].age: Field required (and 999 more)"
    assert len(many["details"]) == 20


@pytest.mark.parametrize("value", ["12", "abc", True, [1.0], {"v": 1}])
def test_non_numeric_value_names_row_and_feature(client: TestClient, value: object) -> None:
    response = client.post("/predict", json={"instances": [row(), row(), row(s3=value)]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "instances[2].s3: Input should be a valid number"
    assert body["details"] == [
        {"loc": "instances[2].s3", "message": "Input should be a valid number"}
    ]


def test_integers_and_nulls_are_accepted(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [row(age=1, sex=None)]})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1


def test_empty_instances(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": []})
    assert response.status_code == 422
    assert response.json()["error"] == (
        "instances: List should have at least 1 item after validation, not 0"
    )


def test_more_rows_than_the_limit(client: TestClient) -> None:
    response = client.post("/predict", json={"instances": [row()] * 101})
    assert response.status_code == 413
    assert response.json() == {
        "error": "101 rows sent; at most 100 are accepted per request (MAX_ROWS)"
    }
    assert client.post("/predict", json={"instances": [row()] * 100}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            b"{not json",
            400,
            "request body is not valid JSON: key must be a string at line 1 column 2",
        ),
        (b"", 400, "request body is empty; expected a JSON object"),
        (b"[1, 2]", 422, "body: Input should be an object"),
        (b'{"rows": []}', 422, "instances: Field required (and 1 more)"),
        (b'{"instances": {"age": 1}}', 422, "instances: Input should be a valid array"),
        (b'{"instances": [1, 2]}', 422, "instances[0]: Input should be an object (and 1 more)"),
    ],
)
def test_malformed_bodies(client: TestClient, body: bytes, status: int, error: str) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == error


def test_json_sent_with_another_content_type_is_understood(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=b'{"instances": [{"age": 1}]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "instances[0].sex: Field required (and 8 more)"


def test_unknown_route_and_wrong_method_use_the_same_shape(client: TestClient) -> None:
    assert client.get("/nope").json() == {"error": "Not Found"}
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_bad_requests_leave_the_service_serving(client: TestClient) -> None:
    before = client.post("/predict", json={"instances": [row()]}).json()
    for body in (b"{", b"[]", b'{"instances": [{"age": "x"}]}'):
        client.post("/predict", content=body)
    assert client.get("/readyz").status_code == 200
    assert client.post("/predict", json={"instances": [row()]}).json() == before


def test_an_unexpected_failure_is_a_logged_500_in_the_same_shape(
    model_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FailingRuntime:
        name = "failing"
        input_width: int | None = None
        fast = True

        def __call__(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("kernel exploded")

    predictor = load_predictor(settings_for(model_root))
    broken = dataclasses.replace(predictor, runtime=FailingRuntime())
    app = create_app(settings_for(model_root), models={"diabetes": broken})
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"instances": [row()]})
        assert response.status_code == 500
        assert response.json() == {"error": "internal server error"}
        assert "kernel exploded" not in response.text
        assert client.get("/readyz").status_code == 200
    assert any("kernel exploded" in str(r.exc_info) for r in caplog.records)
