"""What operators see: request ids, one JSON log line per request, Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.service import service_logging, stderr_until

# A value no log line may contain: features are never logged.
SECRET_VALUE = 0.0123456789
ROW = {"age": SECRET_VALUE, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}


def samples(client: TestClient, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called `name` in /metrics, by its label set."""
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                found[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_a_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42/a:b"})
    assert given.headers["x-request-id"] == "trace-42/a:b"
    generated = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated)
    # An id that would break a header or a log line is replaced, not echoed.
    for bad in (b"has space", b"x" * 129, "ünïcode".encode()):
        echoed = client.get("/healthz", headers={b"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", echoed.headers["x-request-id"])


def test_errors_carry_the_request_id_too(client: TestClient) -> None:
    response = client.post("/predict", content=b"{", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "r-1"


def access_lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The access log lines written to stderr since the last call."""
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    return [line for line in lines if line["logger"] == "app.access"]


def test_one_json_line_per_request_without_feature_values(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    with service_logging("info"):
        access_lines(capfd)
        client.post("/predict", json={"instances": [ROW, ROW]}, headers={"X-Request-ID": "r-7"})
        client.get("/nowhere")
        written = stderr_until(capfd, '"app.access"', count=2)
    lines = [json.loads(line) for line in written.splitlines()]
    predicted, missing = (line for line in lines if line["logger"] == "app.access")
    assert predicted["time"].endswith("Z")
    assert predicted["level"] == "info"
    assert {k: predicted[k] for k in ("request_id", "method", "route", "status", "rows")} == {
        "request_id": "r-7",
        "method": "POST",
        "route": "/predict",
        "status": 200,
        "rows": 2,
    }
    assert (predicted["model_name"], predicted["model_version"]) == ("diabetes", 1)
    assert predicted["latency_ms"] > 0
    assert (missing["route"], missing["status"], missing["rows"]) == ("unmatched", 404, 0)
    assert str(SECRET_VALUE) not in written


def test_other_log_lines_are_json_too(capfd: pytest.CaptureFixture[str]) -> None:
    with service_logging("info"):
        capfd.readouterr()  # what earlier tests' threads left behind
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]", 42, extra={"color_message": "\x1b[36m%d\x1b[0m"}
        )
        written = capfd.readouterr().err.splitlines()
    line = json.loads(next(w for w in written if "Started server process" in w))
    assert (line["level"], line["logger"]) == ("info", "uvicorn.error")
    assert line["message"] == "Started server process [42]"
    assert "color_message" not in line


def test_log_level_warning_turns_the_access_log_off(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    with service_logging("warning"):
        access_lines(capfd)
        client.post("/predict", json={"instances": [ROW]})
        time.sleep(0.05)  # past the 10 ms within which an access line would have gone out
        assert access_lines(capfd) == []


def test_metrics_count_requests_rows_batches_and_models(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/predict", json={"instances": [ROW] * 4}).status_code == 200
    assert client.post("/predict", json={"instances": [ROW] * 101}).status_code == 413
    assert client.get("/v1/models/diabetes").status_code == 200
    client.get("/nowhere")

    requests = samples(client, "tabserve_http_requests_total")
    assert requests[labels(route="/predict", method="POST", status="200")] == 3
    assert requests[labels(route="/predict", method="POST", status="413")] == 1
    assert requests[labels(route="/v1/models/{name}", method="GET", status="200")] == 1
    assert requests[labels(route="unmatched", method="GET", status="404")] == 1
    latency = samples(client, "tabserve_http_request_duration_seconds_count")
    assert latency[labels(route="/predict")] == 4
    assert samples(client, "tabserve_rows_predicted_total") == {labels(model="diabetes"): 12}
    batches = samples(client, "tabserve_batch_size_rows_sum")
    assert batches[labels(model="diabetes")] == 12  # every predicted row went through a call
    assert batches[labels(model="labels")] == 0
    loads = samples(client, "tabserve_model_loads_total")
    served = client.get("/readyz").json()
    assert loads == {
        labels(model=name, kind=kind, outcome=outcome): float(kind == "startup")
        for name in served["models"]
        for kind, outcome in (("startup", "success"), ("reload", "success"), ("reload", "failure"))
    }
    info = samples(client, "tabserve_model_info")
    assert info[labels(model="diabetes", version="1", runtime=served["runtime"])] == 1
    assert len(info) == len(served["models"])
    # The scrape that reads the gauge is itself in flight.
    assert samples(client, "tabserve_http_requests_in_flight") == {labels(): 1}
    assert samples(client, "process_resident_memory_bytes")


def test_metrics_of_several_apps_stay_apart(client: TestClient, model_root: object) -> None:
    from tests.helpers.service import serve

    client.post("/predict", json={"instances": [ROW]})
    with serve(model_root, max_rows=100) as other:  # type: ignore[arg-type]
        assert samples(other, "tabserve_rows_predicted_total") == {}


def test_access_lines_go_out_whole_and_within_pipe_buf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines written within the flush interval go out together, each write whole lines of at
    most PIPE_BUF bytes, so it never interleaves with another writer's; a longer line goes out
    alone; nothing is lost or reordered."""
    import asyncio
    import select

    from app.ops import logs

    writes: list[bytes] = []
    monkeypatch.setattr("app.ops.logs.os.write", lambda fd, data: writes.append(bytes(data)))
    access_log = logs.AccessLog(fd=99)
    long = "x" * (2 * select.PIPE_BUF)
    sent = [f"line {i}" for i in range(300)]
    sent.insert(150, long)

    async def write_all() -> None:
        for i, message in enumerate(sent):
            access_log.write(message, {"request_id": str(i)})
        await asyncio.sleep(2 * access_log.FLUSH_SECONDS)

    asyncio.run(write_all())
    assert 3 < len(writes) < len(sent) / 10
    assert all(w.endswith(b"\n") for w in writes)
    oversized = [w for w in writes if len(w) > select.PIPE_BUF]
    assert len(oversized) == 1 and json.loads(oversized[0])["message"] == long
    received = [json.loads(line) for w in writes for line in w.splitlines()]
    assert [line["message"] for line in received] == sent
    assert [line["request_id"] for line in received] == [str(i) for i in range(len(sent))]
