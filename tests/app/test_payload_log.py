"""The request log to retrain on: exactly the requests answered, in whole gzip files or as
CloudEvents, never delaying or failing a request, and nothing lost to a SIGTERM drain."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx2 as httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app.ops import payload_log
from app.ops.payload_log import REQUEST_TYPE, RESPONSE_TYPE, PayloadLog
from app.settings import Settings
from tests.helpers.live import app_process
from tests.helpers.service import serve

ROW: dict[str, float | None] = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02}
ROW |= {"s1": -0.04, "s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": None}


def logged(directory: Path) -> list[dict[str, Any]]:
    """Every entry of every finished file, in file order."""
    assert not [p for p in directory.iterdir() if p.name.startswith(".")], "a file left open"
    entries: list[dict[str, Any]] = []
    for path in sorted(directory.glob("requests-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            entries.extend(json.loads(line) for line in lines)
    return entries


def rows(i: int) -> list[dict[str, Any]]:
    return [ROW | {"age": 0.001 * i, "bmi": 0.001 * k} for k in range(1 + i % 3)]


def test_the_files_hold_exactly_the_requests_answered(
    model_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Entries written as they come rather than gathered: the files rotate during the test.
    monkeypatch.setattr(payload_log, "LINGER_SECONDS", 0)
    answers = {}
    with serve(model_root, payload_log_dir=tmp_path, payload_log_max_bytes=2048) as client:
        for i in range(40):
            response = client.post(
                "/predict", json={"instances": rows(i)}, headers={"x-request-id": f"r{i}"}
            )
            assert response.status_code == 200
            answers[f"r{i}"] = response.json()["predictions"]
        # A refused request is not an answer: not logged.
        assert client.post("/predict", json={"instances": [{"age": "x"}]}).status_code == 422
        csv = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n0.02,0.05,,0.01,0,0,0,0,0,0\n"
        response = client.post(
            "/predict",
            content=csv,
            headers={"content-type": "text/csv", "x-request-id": "csv"},
        )
        answers["csv"] = response.json()["predictions"]
        # Rotated past 2 KiB: more than one file, the current one still hidden until closed.
        assert len(list(tmp_path.glob("requests-*.jsonl.gz"))) >= 2
    entries = logged(tmp_path)
    assert [e["id"] for e in entries] == [*(f"r{i}" for i in range(40)), "csv"]
    for e in entries:
        assert e["predictions"] == answers[e["id"]]
        assert e["model_name"] == "diabetes" and e["model_version"] == 1
        assert e["time"].endswith("Z")
    assert entries[7]["instances"] == rows(7)
    assert entries[-1]["instances"][0]["bmi"] is None  # the blank CSV cell, as validated


def test_probabilities_and_classes_are_logged_for_a_classifier(
    model_root: Path, tmp_path: Path
) -> None:
    with serve(model_root, "labels", payload_log_dir=tmp_path) as client:
        features = client.get("/model").json()["features"]
        answer = client.post("/predict", json={"instances": [dict.fromkeys(features)]}).json()
    (logged_entry,) = logged(tmp_path)
    assert logged_entry["predictions"] == answer["predictions"]
    assert logged_entry["classes"] == answer["classes"]
    np.testing.assert_allclose(logged_entry["probabilities"], answer["probabilities"], rtol=1e-6)


class SlowSink:
    def __init__(self) -> None:
        self.written: list[Mapping[str, Any]] = []
        self.release = threading.Event()

    def write(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.release.wait(10)
        self.written.extend(entries)

    def close(self) -> None:
        pass

    @staticmethod
    def prepare(entry: dict[str, Any]) -> dict[str, Any]:
        return entry


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async def scenario() -> tuple[int, int, float]:
        sink, dropped = SlowSink(), []
        log = PayloadLog(sink, capacity_rows=10, on_drop=lambda: dropped.append(1))
        log.start()
        started = time.perf_counter()
        for i in range(50):
            log.submit({"id": i, "instances": [{}, {}]})  # two rows each: five fit
            await asyncio.sleep(0)  # let the writer take what it can
        submitting = time.perf_counter() - started
        sink.release.set()
        await log.close()
        return len(sink.written), len(dropped), submitting

    written, dropped, seconds = asyncio.run(scenario())
    assert written + dropped == 50
    assert dropped >= 40  # the sink held one batch (its rows still count); the rest wait
    assert seconds < 0.5  # submitting never waited for the sink


def test_the_drop_counter_is_exported(model_root: Path, tmp_path: Path) -> None:
    with serve(model_root, payload_log_dir=tmp_path) as client:
        client.post("/predict", json={"instances": [ROW]})
        text = client.get("/metrics").text
    (value,) = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "tabserve_payload_log_dropped_total"
    ]
    assert value == 0


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(
            ({k.lower(): v for k, v in self.headers.items()}, json.loads(body))
        )
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    received: list[tuple[dict[str, str], Any]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    finally:
        server.shutdown()


def test_cloudevents_in_binary_mode_as_kserve_sends_them(
    model_root: Path, receiver: tuple[str, list[tuple[dict[str, str], Any]]]
) -> None:
    url, received = receiver
    with serve(model_root, payload_log_url=url) as client:
        answers = [
            client.post("/predict", json={"instances": rows(i)}, headers={"x-request-id": f"e{i}"})
            for i in range(3)
        ]
    assert len(received) == 6
    for i, answer in enumerate(answers):
        (request_headers, request_body), (response_headers, response_body) = received[
            2 * i : 2 * i + 2
        ]
        assert request_headers["ce-type"] == REQUEST_TYPE
        assert response_headers["ce-type"] == RESPONSE_TYPE
        for headers in (request_headers, response_headers):
            assert headers["ce-id"] == f"e{i}"
            assert headers["ce-specversion"] == "1.0"
            assert headers["content-type"] == "application/json"
            assert headers["ce-inferenceservicename"] == "diabetes"
        assert request_body == {"instances": rows(i)}
        assert response_body["predictions"] == answer.json()["predictions"]


def test_one_destination_only() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(payload_log_dir=Path("x"), payload_log_url="http://127.0.0.1:9/")


def test_a_sigterm_drain_loses_nothing_that_was_answered(model_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with app_process(model_root, PAYLOAD_LOG_DIR=str(log), LOG_LEVEL="warning") as (process, port):

        def post(i: int) -> str | None:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/predict",
                    json={"instances": rows(i)},
                    headers={"x-request-id": f"s{i}"},
                    timeout=10,
                )
            except httpx.TransportError:
                return None  # refused once the drain began: not answered, not logged
            return f"s{i}" if answer.status_code == 200 else None

        with ThreadPoolExecutor(8) as pool:
            answered = list(pool.map(post, range(200)))
            process.send_signal(signal.SIGTERM)
            answered += list(pool.map(post, range(200, 220)))
        assert process.wait(timeout=30) == 0
    ids = {i for i in answered if i is not None}
    assert len(ids) >= 200
    assert {e["id"] for e in logged(log)} == ids
