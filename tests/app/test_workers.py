"""WORKERS=2: two worker processes on one port under a supervisor, /metrics adding up across
them whichever answers, each draining on SIGTERM and each serving a new version."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from app.__main__ import main, parse_overrides
from app.ops.live_cost import LiveCostFigures, pooled
from tests.app.test_reloads import publish
from tests.app.test_shutdown import finish, started_request
from tests.helpers.live import app_process, free_port
from tests.helpers.service import service_logging

ROW = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}
PREDICT = {"route": "/predict", "method": "POST", "status": "200"}

Server = tuple[subprocess.Popen[str], int]
Metrics = dict[str, dict[frozenset[tuple[str, str]], float]]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def workers_of(supervisor: subprocess.Popen[str]) -> list[psutil.Process]:
    return psutil.Process(supervisor.pid).children()


def connections(worker: psutil.Process, port: int, status: str) -> int:
    """The worker's TCP sockets on `port` in `status` (LISTEN, ESTABLISHED)."""
    try:
        found = worker.net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return 0
    return sum(1 for c in found if c.laddr and c.laddr.port == port and c.status == status)


def all_listening(supervisor: subprocess.Popen[str], port: int, count: int = 2) -> bool:
    """`count` workers, each with its models warm and its socket listening on `port`."""
    found = workers_of(supervisor)
    return len(found) == count and all(connections(w, port, "LISTEN") for w in found)


def scrape(port: int) -> Metrics:
    """Every sample of /metrics, by sample name and label set, on a new connection."""
    found: Metrics = {}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def counted(metrics_dir: Path, route: str) -> dict[int, float]:
    """Requests answered on `route` by each process, from its own counter file."""
    found: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        found[pid] = sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
            if json.loads(key)[0] == "tabserve_http_requests"
            and json.loads(key)[2].get("route") == route
        )
    return found


def predict(port: int) -> tuple[int, dict[str, Any]]:
    """One single-row prediction on a new connection (which the kernel gives any worker):
    the status and the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps({"instances": [ROW]})
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """TMPDIR of the server: the supervisor makes its metrics directory in it."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@contextmanager
def two_workers(model_root: Path, scratch: Path, **env: str) -> Iterator[Server]:
    """`python -m app` with WORKERS=2, yielded once both workers listen; stopped after."""
    # No access lines unless asked: nothing reads the pipe they go to before the end.
    settings = {"WORKERS": "2", "DRAIN_TIMEOUT_SECONDS": "3", "LOG_LEVEL": "warning"}
    settings |= {"TMPDIR": str(scratch), **env}
    with app_process(model_root, **settings) as (process, port):
        try:
            wait_for(lambda: all_listening(process, port), "both workers to listen")
            yield process, port
        finally:
            if process.poll() is None:  # a SIGKILL would leave its workers behind
                workers = workers_of(process)
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    for worker in workers:
                        worker.kill()


@pytest.fixture
def server(model_root: Path, scratch: Path) -> Iterator[Server]:
    with two_workers(model_root, scratch) as running:
        yield running


def metrics_dir(scratch: Path) -> Path:
    (found,) = scratch.glob("tabserve-metrics-*")
    return found


def snapshots_after(scratch: Path, moment: float) -> None:
    """Wait until every worker has published its own figures since `moment` (time.time())."""

    def published() -> bool:
        found = list(metrics_dir(scratch).glob("worker-*.json"))
        return len(found) == 2 and all(p.stat().st_mtime > moment for p in found)

    wait_for(published, "the workers' snapshots")


def test_two_workers_answer_on_one_port_and_metrics_add_up(
    server: Server, scratch: Path, model_root: Path
) -> None:
    process, port = server
    workers = workers_of(process)
    assert len({w.pid for w in workers}) == 2
    assert all(w.cmdline()[-2:] == ["-m", "app"] for w in workers)

    assert all(predict(port)[0] == 200 for _ in range(200))
    directory = metrics_dir(scratch)
    wait_for(lambda: sum(counted(directory, "/predict").values()) == 200, "the counts")
    per_worker = counted(directory, "/predict")
    assert set(per_worker) == {w.pid for w in workers}
    assert all(n > 0 for n in per_worker.values()), per_worker  # the kernel spread them
    snapshots_after(scratch, time.time())

    answered_by: set[int] = set()
    for _ in range(30):  # until both workers have answered a scrape
        pid, metrics = scrape_from(port, directory)
        assert metrics["tabserve_http_requests_total"][labels(**PREDICT)] == 200
        latency = metrics["tabserve_http_request_duration_seconds_count"]
        assert latency[labels(route="/predict")] == 200
        assert metrics["tabserve_rows_predicted_total"][labels(model="diabetes")] == 200
        assert metrics["tabserve_batch_size_rows_sum"][labels(model="diabetes")] == 200
        # Every worker loaded every model at start-up.
        loads = metrics["tabserve_model_loads_total"]
        models = sorted(p.name for p in model_root.iterdir())
        for name in models:
            assert loads[labels(model=name, kind="startup", outcome="success")] == 2
        info = metrics["tabserve_model_info"]
        assert info[labels(model="diabetes", version="1", runtime="litert")] == 1
        assert len(info) == len(models)
        # The scrape itself is in flight; the other worker answers nothing (or, as of its
        # last snapshot, the scrape before, if it answered that one).
        in_flight = metrics["tabserve_http_requests_in_flight"][labels()]
        assert in_flight == 1 if not answered_by else 1 <= in_flight <= 2
        answered_by.add(pid)
        # Process figures per worker, and the supervisor's.
        pids = {dict(k)["pid"] for k in metrics["process_resident_memory_bytes"]}
        assert pids == {str(p) for p in (process.pid, *per_worker)}
        if len(answered_by) == 2:
            break
    assert answered_by == set(per_worker)


def scrape_from(port: int, directory: Path) -> tuple[int, Metrics]:
    """A scrape, and the worker that answered it (whose count of scrapes went up)."""
    before = counted(directory, "/metrics")
    metrics = scrape(port)
    wait_for(lambda: sum(counted(directory, "/metrics").values()) > sum(before.values()), "it")
    after = counted(directory, "/metrics")
    (pid,) = (pid for pid, n in after.items() if n > before.get(pid, 0))
    return pid, metrics


def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(
    model_root: Path, scratch: Path
) -> None:
    with two_workers(model_root, scratch, LOG_LEVEL="info") as server:
        drain(server, scratch)


def drain(server: Server, scratch: Path) -> None:
    process, port = server
    workers = workers_of(process)
    bodies: list[bytes] = []
    in_flight: list[socket.socket] = []
    # Requests in flight in both workers: new connections until each holds two at least.
    while min(connections(w, port, "ESTABLISHED") for w in workers) < 2:
        assert len(in_flight) < 60, "the kernel gave every connection to one worker"
        bodies.append(json.dumps({"instances": [ROW] * (len(bodies) % 4 + 1)}).encode())
        in_flight.append(started_request(port, bodies[-1]))
        time.sleep(0.02)
    time.sleep(0.3)  # let the workers read the heads and start handling each request
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # no worker takes new connections
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    answers = [finish(connection, body) for connection, body in zip(in_flight, bodies, strict=True)]
    assert [status for status, _ in answers] == [200] * len(bodies)
    sizes = [len(answer["predictions"]) for _, answer in answers]  # type: ignore[arg-type]
    assert sizes == [len(json.loads(body)["instances"]) for body in bodies]
    assert process.wait(timeout=20) == 0
    assert not any(w.is_running() for w in workers)
    assert list(scratch.iterdir()) == []  # the metrics directory is gone
    assert process.stderr is not None
    log = process.stderr.read()
    assert log.count("draining requests in flight") == 2
    assert "every worker has drained and exited" in log


def test_every_worker_serves_a_new_version(
    tmp_path: Path, version_dir: Path, scratch: Path
) -> None:
    root = tmp_path / "models"
    publish(version_dir, root, 1)
    with two_workers(root, scratch, MODEL_NAME="m", MODEL_POLL_SECONDS="0.2") as (_, port):
        publish(version_dir, root, 2)

        def reloaded() -> bool:
            loads = scrape(port)["tabserve_model_loads_total"]
            return loads[labels(model="m", kind="reload", outcome="success")] == 2

        wait_for(reloaded, "both workers to load version 2")
        # New connections land on either worker: 40 answers in a row from version 2.
        assert {predict(port)[1]["model_version"] for _ in range(40)} == {2}
        snapshots_after(scratch, time.time())
        info = scrape(port)["tabserve_model_info"]
        assert info == {labels(model="m", version="2", runtime="litert"): 1}


def test_a_worker_that_dies_is_replaced_and_its_counts_stay(server: Server, scratch: Path) -> None:
    process, port = server
    assert all(predict(port)[0] == 200 for _ in range(50))
    victim = workers_of(process)[0]
    directory = metrics_dir(scratch)
    wait_for(lambda: sum(counted(directory, "/predict").values()) == 50, "the counts")
    victim.kill()
    wait_for(
        lambda: (
            victim.pid not in {w.pid for w in workers_of(process)} and all_listening(process, port)
        ),
        "a new worker",
    )
    assert all(predict(port)[0] == 200 for _ in range(10))
    snapshots_after(scratch, time.time())
    metrics = scrape(port)
    assert metrics["tabserve_http_requests_total"][labels(**PREDICT)] == 60
    pids = {dict(k)["pid"] for k in metrics["process_resident_memory_bytes"]}
    assert str(victim.pid) not in pids
    assert metrics["tabserve_http_requests_in_flight"] == {labels(): 1}
    assert process.poll() is None


def test_workers_stop_when_their_supervisor_is_killed(server: Server) -> None:
    process, port = server
    workers = workers_of(process)
    process.kill()  # no chance to stop them: the kernel tells them (PR_SET_PDEATHSIG)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")


def test_a_broken_bundle_stops_the_supervisor_with_status_2(tmp_path: Path, scratch: Path) -> None:
    env = {
        "MODEL_DIR": str(tmp_path),
        "MODEL_NAME": "nothing",
        "WORKERS": "2",
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "TMPDIR": str(scratch),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no model versions found" in done.stderr
    assert "could not start (status 2): stopping the others" in done.stderr
    assert list(scratch.iterdir()) == []


def test_a_port_in_use_stops_the_supervisor_with_status_2(
    capsys: pytest.CaptureFixture[str], model_root: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with service_logging("info"):
            status = main(
                ["--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                 "--model-dir", str(model_root), "--model-name", "diabetes"]
            )  # fmt: skip
    assert status == 2
    assert f"cannot start: 127.0.0.1:{port}" in capsys.readouterr().err


def test_workers_is_an_option_and_a_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_overrides(["--workers", "3"]) == {"workers": "3"}
    with service_logging("info"):
        assert main(["--workers", "0"]) == 2
    assert "setting WORKERS" in capsys.readouterr().err


def test_the_live_cost_of_several_workers_is_their_cpu_over_their_rows() -> None:
    def figures(seconds: float, rows: int, cpu: float) -> LiveCostFigures:
        return LiveCostFigures(
            window_seconds=seconds,
            predictions=rows,
            cpu_seconds=cpu,
            cpu_seconds_per_1000_predictions=None,
            cost_per_cpu_hour=None,
            cost_per_million_predictions=None,
        )

    both = pooled([figures(60.0, 3000, 0.6), figures(59.5, 1000, 0.6)], 3.6)
    assert (both.window_seconds, both.predictions, both.cpu_seconds) == (60.0, 4000, 1.2)
    assert both.cpu_seconds_per_1000_predictions == pytest.approx(0.3)
    assert both.cost_per_million_predictions == pytest.approx(0.3)  # 300 CPU-s at 3.6 an hour
    idle = pooled([figures(60.0, 0, 0.1), figures(60.0, 0, 0.1)], None)
    assert idle.cpu_seconds_per_1000_predictions is None
