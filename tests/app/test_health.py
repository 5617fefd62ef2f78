"""Liveness, readiness and model metadata, before, during and after the model is loaded."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.bundle import read_metadata
from app.http.factory import create_app
from tests.helpers.service import settings_for


def test_ready_with_model_loaded(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "model_name": "diabetes",
        "model_version": 1,
        "runtime": "litert",
        "models": {"diabetes": 1, "labels": 1, "messy": 1},
    }


def test_model_endpoint_serves_the_bundle_metadata(client: TestClient, version_dir: Path) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    trained = read_metadata(version_dir).model_dump(mode="json")
    provenance = {"name": trained["name"], "version": trained["version"]}
    answer = response.json()
    live = answer.pop("live_cost")  # the service's own, checked in test_live_cost.py
    assert live["window_seconds"] >= 0
    assert answer == {**trained, "trained_as": provenance}


def test_not_ready_before_the_lifespan_loads_a_model(model_root: Path) -> None:
    client = TestClient(create_app(settings_for(model_root)))  # no `with`: lifespan not run
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"error": "model is not loaded yet or the service has stopped"}
    assert client.post("/predict", json={"instances": [{"age": 1}]}).status_code == 503


def test_not_ready_after_shutdown(model_root: Path) -> None:
    app = create_app(settings_for(model_root))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
    assert TestClient(app).get("/readyz").status_code == 503


def test_pinned_version_is_served(model_root: Path) -> None:
    with TestClient(create_app(settings_for(model_root, model_version=1))) as client:
        assert client.get("/readyz").json()["model_version"] == 1


def test_openapi_documents_the_request_and_error_shapes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/predict"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["instances"]
    assert body_schema["additionalProperties"] is False
    example = body_schema["examples"][0]
    response = client.post("/predict", json=example)
    assert response.status_code == 200, response.text
    error_ref = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref == "#/components/schemas/ErrorResponse"


def test_openapi_shows_regression_and_classification_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    shapes = {ref["$ref"].rsplit("/", 1)[-1] for ref in ok["schema"]["anyOf"]}
    assert shapes == {"RegressionResponse", "ClassificationResponse"}
    classification = spec["components"]["schemas"]["ClassificationResponse"]
    assert {"predictions", "probabilities", "classes"} <= set(classification["required"])
