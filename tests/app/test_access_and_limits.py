"""API keys, the request timeout and the body limit's interplay with them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from app.model.loading import load_predictor
from app.model.runtime import Runtime
from app.ops.api_keys import ApiKeyError, read_api_keys
from tests.helpers.service import serve, service_logging, settings_for, stderr_until

ROW = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}
KEYS = ("k-first-0123456789", "k-second-9876543210")
BODY = {"instances": [ROW]}

PROTECTED = [
    ("GET", "/", None),
    ("POST", "/predict", BODY),
    ("GET", "/model", None),
    ("GET", "/model/report", None),
    ("POST", "/v1/models/diabetes:predict", BODY),
    ("GET", "/v1/models/diabetes/metadata", None),
    ("POST", "/v2/models/diabetes/infer", None),
    ("GET", "/v2/models/diabetes", None),
]
OPEN = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/diabetes/ready",
    "/docs",
    "/redoc",
    "/docs-assets/swagger-ui-bundle.js",
    "/openapi.json",
]


@pytest.fixture(scope="module")
def keyed(model_root: Path) -> Iterator[TestClient]:
    with serve(model_root, api_keys=",".join(KEYS)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_endpoints_need_a_key(
    keyed: TestClient, method: str, path: str, body: object
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": KEYS[0][:-1]}):
        response = keyed.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="tabserve"'
        assert "API key" in response.json()["error"]
    for headers in ({"Authorization": f"Bearer {KEYS[0]}"}, {"X-API-Key": KEYS[1]}):
        assert keyed.request(method, path, json=body, headers=headers).status_code != 401


@pytest.mark.parametrize("path", OPEN)
def test_probes_metrics_and_docs_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_a_keyed_prediction_is_the_same_prediction(keyed: TestClient, client: TestClient) -> None:
    answer = keyed.post("/predict", json=BODY, headers={"Authorization": f"bearer {KEYS[1]}"})
    assert answer.json() == client.post("/predict", json=BODY).json()


def test_keys_never_reach_logs_or_metrics(
    keyed: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    # Everything the service logs, at its most verbose, goes to stderr as JSON lines.
    with service_logging("debug"):
        keyed.post("/predict", json=BODY, headers={"X-API-Key": KEYS[0]})
        keyed.post("/predict", json=BODY, headers={"X-API-Key": "wrong-key-guess"})
        written = stderr_until(capfd, '"app.access"', count=2)
    assert '"status":401' in written  # the access lines were written, without the keys
    scraped = keyed.get("/metrics").text
    for secret in (*KEYS, "wrong-key-guess"):
        assert secret not in written
        assert secret not in scraped
    assert 'status="401"' in scraped


def test_openapi_documents_the_key_schemes(keyed: TestClient) -> None:
    document = keyed.get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    predict = document["paths"]["/predict"]["post"]
    assert predict["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in predict["responses"]
    assert "security" not in document["paths"]["/readyz"]["get"]


def test_keys_file_with_comments_and_blank_lines(tmp_path: Path, model_root: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# rotated 2026-11\n\n  file-key-1  \nfile-key-2\n")
    settings = settings_for(model_root, api_keys="env-key", api_keys_file=path)
    assert read_api_keys(settings) == (b"env-key", b"file-key-1", b"file-key-2")
    with TestClient(create_app(settings)) as keyed:
        assert keyed.post("/predict", json=BODY, headers={"X-API-Key": "file-key-2"}).is_success
        assert keyed.post("/predict", json=BODY, headers={"X-API-Key": "env-key"}).is_success


@pytest.mark.parametrize("content", ["", "# only a comment\n\n"])
def test_an_empty_keys_file_refuses_to_start(
    tmp_path: Path, model_root: Path, content: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(ApiKeyError, match="holds no key"):
        create_app(settings_for(model_root, api_keys_file=path))


def test_a_missing_keys_file_refuses_to_start(tmp_path: Path, model_root: Path) -> None:
    with pytest.raises(ApiKeyError, match="cannot be read"):
        create_app(settings_for(model_root, api_keys_file=tmp_path / "absent"))


def test_no_keys_means_no_authentication(client: TestClient) -> None:
    assert client.post("/predict", json=BODY).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


class SlowRuntime:
    """A runtime whose every call takes `seconds`: a stand-in for an overloaded machine."""

    name = "slow"
    fast = False

    def __init__(self, inner: Runtime, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.input_width = inner.input_width

    def __call__(self, x: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return self.inner(x)


@pytest.mark.parametrize("rows", [1, 100])  # batched, and alone in a worker thread
def test_a_slow_answer_is_a_504_and_the_service_carries_on(model_root: Path, rows: int) -> None:
    settings = settings_for(model_root, request_timeout_seconds=0.2, model_poll_seconds=0)
    fast = load_predictor(settings)
    slow = dataclasses.replace(fast, runtime=SlowRuntime(fast.runtime, seconds=1.0))
    with TestClient(create_app(settings, {"diabetes": slow})) as client:
        started = time.monotonic()
        response = client.post("/predict", json={"instances": [ROW] * rows})
        assert time.monotonic() - started < 0.9  # did not wait for the model call
        assert response.status_code == 504
        assert response.json() == {"error": "no answer within 0.2 s (REQUEST_TIMEOUT_SECONDS)"}
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").text.count('status="504"') == 1
