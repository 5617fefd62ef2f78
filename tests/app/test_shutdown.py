"""SIGTERM drains: readiness turns 503 at once, the port stops taking connections, requests in
flight finish with their answers, and the process exits 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from app.__main__ import DrainingServer, _config
from app.http.factory import create_app
from tests.helpers.live import app_process
from tests.helpers.service import settings_for

ROW = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}


def test_readiness_turns_503_as_soon_as_the_signal_arrives(model_root: Path) -> None:
    settings = settings_for(model_root)
    app = create_app(settings)
    server = DrainingServer(_config(app, settings), app.state.service)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        server.handle_exit(signal.SIGTERM, None)
        assert client.get("/readyz").json() == {"error": "the service is shutting down"}
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/healthz").status_code == 200  # alive: do not restart it
        # A request that still reaches it is answered: the model stays until the drain ends.
        assert client.post("/predict", json={"instances": [ROW]}).status_code == 200


@pytest.fixture
def server(model_root: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`python -m app` on a free port, started and ready."""
    with app_process(model_root, DRAIN_TIMEOUT_SECONDS="3") as running:
        yield running


def started_request(port: int, body: bytes) -> socket.socket:
    """A POST /predict whose headers and first half of body are sent: in flight, waiting."""
    connection = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection.sendall(head + body[: len(body) // 2])
    return connection


def finish(connection: socket.socket, body: bytes) -> tuple[int, dict[str, object]]:
    connection.sendall(body[len(body) // 2 :])
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(payload)


def test_sigterm_finishes_requests_in_flight_then_exits_0(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    bodies = [json.dumps({"instances": [ROW] * n}).encode() for n in (1, 2, 3, 100, 1000)]
    in_flight = [started_request(port, body) for body in bodies]
    time.sleep(0.3)  # let the server read the heads and start handling each request
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # the port no longer takes new connections
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    answers = [finish(connection, body) for connection, body in zip(in_flight, bodies, strict=True)]
    assert [status for status, _ in answers] == [200] * len(bodies)
    assert [len(answer["predictions"]) for _, answer in answers] == [1, 2, 3, 100, 1000]  # type: ignore[arg-type]
    assert process.wait(timeout=20) == 0
    assert process.stderr is not None
    log = process.stderr.read()
    assert "draining requests in flight" in log


def test_a_request_that_never_finishes_does_not_hold_the_exit_past_the_drain_timeout(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    stuck = started_request(port, json.dumps({"instances": [ROW]}).encode())
    time.sleep(0.3)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    # It waited for the stuck request, but only for DRAIN_TIMEOUT_SECONDS (3), plus shutdown.
    assert 2.5 < time.monotonic() - started < 3 + 5
    stuck.close()
