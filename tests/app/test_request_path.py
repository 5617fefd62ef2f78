"""POST /predict is answered by the service's own middleware ahead of FastAPI's stack, with
the same answers, errors, metrics and access lines as every other route."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app.http.factory import create_app
from tests.helpers.service import settings_for

ROW = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}


def test_predict_skips_fastapi_and_keeps_its_errors_and_labels(model_root: Path) -> None:
    app = create_app(settings_for(model_root))
    with TestClient(app) as client:
        front = app.middleware_stack
        through_fastapi: list[str] = []
        stack = front.stack  # type: ignore[union-attr]

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                through_fastapi.append(f"{scope['method']} {scope['path']}")
            await stack(scope, receive, send)

        front.stack = counted  # type: ignore[union-attr]
        assert client.post("/predict", json={"instances": [ROW]}).status_code == 200
        bad = client.post("/predict", json={"instances": [ROW | {"age": "old"}]})
        assert bad.status_code == 422
        assert bad.json()["error"] == "instances[0].age: Input should be a valid number"
        assert bad.json()["details"] == [
            {"loc": "instances[0].age", "message": "Input should be a valid number"}
        ]
        assert bad.headers["x-request-id"]
        assert client.get("/predict").status_code == 405  # other methods: FastAPI's routing
        metrics = client.get("/metrics").text
    assert through_fastapi == ["GET /predict", "GET /metrics"]
    for status in ("200", "422"):
        line = f'tabserve_http_requests_total{{method="POST",route="/predict",status="{status}"}}'
        assert line in metrics
