"""One server, one round: start it, time readiness, check, warm up, read memory, load it."""

from __future__ import annotations

import http.client
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.catalog import PAYLOAD_LOG_ENV
from benchmarks.cost import CostMeter, RunCost
from benchmarks.process import (
    HOST,
    Pinning,
    ServerFailed,
    ServerProcess,
    ServerSpec,
    request,
    running,
)
from benchmarks.wrk import Load, Measurement, WrkFailed, run_wrk

logger = logging.getLogger(__name__)

PAYLOAD_DROPPED = "tabserve_payload_log_dropped_total"
"""Request log entries the service dropped (queue full or sink failed), on /metrics."""
STEADY_PER_CONNECTION = 2
"""A window that completes fewer requests per connection than this is mostly the time to the
first answers, not a steady state; it is measured again over a longer window."""


@dataclass(frozen=True)
class Plan:
    """What to measure on every server, and for how long."""

    concurrencies: list[int]
    batch_concurrency: int
    batch_rows: int
    seconds: int
    max_seconds: int
    """Longest window when a slow server needs a longer one (see `STEADY_PER_CONNECTION`)."""
    warmup_seconds: int
    single_body: Path
    batch_body: Path

    def single(self, connections: int, seconds: int) -> Load:
        """Single-row requests."""
        return Load(connections, seconds, self.single_body, 1)

    def batch(self, seconds: int) -> Load:
        """`batch_rows`-row requests."""
        return Load(self.batch_concurrency, seconds, self.batch_body, self.batch_rows)


def measure_round(spec: ServerSpec, plan: Plan, pinning: Pinning, log_dir: Path) -> dict[str, Any]:
    """Every figure of `spec` for one round; a failure is recorded in `error`, not raised."""
    record: dict[str, Any] = {"error": None, "single": {}, "batch": None}
    with running(spec, log_dir, pinning) as server:
        try:
            _measure(server, plan, pinning, record)
        except (ServerFailed, WrkFailed, OSError) as exc:
            record["error"] = str(exc)
            record["log_tail"] = server.log_tail()
            logger.error("%s: %s", spec.name, exc)
            for line in record["log_tail"][-8:]:
                logger.error("  %s | %s", spec.name, line)
    return record


def _measure(server: ServerProcess, plan: Plan, pinning: Pinning, record: dict[str, Any]) -> None:
    name = server.spec.name
    record["ready_s"] = server.wait_ready()
    record["readyz"] = readyz_body(server.port)
    logger.info("%s ready in %.2f s", name, record["ready_s"])
    record["check"] = check_answers(
        server, [(1, plan.single_body), (plan.batch_rows, plan.batch_body)]
    )
    driver = _Driver(server, plan, pinning.prefix(pinning.client_cpu))
    record["drain_s"] = driver.drained
    driver.load(plan.single(max(plan.concurrencies), plan.warmup_seconds))
    driver.load(plan.batch(plan.warmup_seconds))
    record["rss_mb"] = server.rss_mb()
    for connections in plan.concurrencies:
        result, cost = driver.steady(plan.single(connections, plan.seconds))
        record["single"][str(connections)] = {**result.to_json(), "cost": cost.to_json()}
        _log(name, f"1 row c{connections}", result, cost)
    result, cost = driver.steady(plan.batch(plan.seconds))
    record["batch"] = {**result.to_json(), "cost": cost.to_json()}
    _log(name, f"{plan.batch_rows} rows c{plan.batch_concurrency}", result, cost)
    if server.proc.poll() is not None:
        raise ServerFailed(f"{name} exited with status {server.proc.returncode} under load")
    if PAYLOAD_LOG_ENV in server.spec.env:
        record["payload_log"] = payload_log_state(server)
    record["log_tail"] = server.log_tail()


class _Driver:
    """Runs wrk against one server, and lets the server go idle after each run."""

    def __init__(self, server: ServerProcess, plan: Plan, client_prefix: list[str]) -> None:
        self.server = server
        self.plan = plan
        self.url = f"http://{HOST}:{server.port}/predict"
        self.prefix = client_prefix
        self.meter = CostMeter(server, server.spec.cost_window_s)
        self.drained: list[float] = []
        """Seconds the server stayed busy after each run (requests wrk left in flight)."""

    def load(self, what: Load) -> Measurement:
        """One wrk run (a warm-up), then wait until the server is idle again."""
        result = run_wrk(self.url, what, self.prefix)
        self.drained.append(round(self.server.wait_idle(), 2))
        return result

    def costed(self, what: Load) -> tuple[Measurement, RunCost]:
        """`load`, with what the run cost the server, read right before and right after wrk
        (before the drain: wrk's rows are the run's, and so must the CPU be)."""
        before = self.meter.before()
        result = run_wrk(self.url, what, self.prefix)
        cost = self.meter.after(before, result)
        self.drained.append(round(self.server.wait_idle(), 2))
        return result, cost

    def steady(self, what: Load) -> tuple[Measurement, RunCost]:
        """A run long enough to be a steady state: a slow server gets a longer window.

        Closed-loop latency is connections / throughput, so a window shorter than a few
        latencies mostly measures the wait for the first answers.
        """
        result, cost = self.costed(what)
        if result.requests >= STEADY_PER_CONNECTION * what.connections:
            return result, cost
        rate = result.requests_per_s
        need = math.ceil(4 * what.connections / rate) if rate > 0 else self.plan.max_seconds
        seconds = min(self.plan.max_seconds, max(what.seconds + 1, need))
        if seconds <= what.seconds:
            return result, cost
        logger.info(
            "%s: %d requests in %d s over %d connections is no steady state; again over %d s",
            self.server.spec.name,
            result.requests,
            what.seconds,
            what.connections,
            seconds,
        )
        return self.costed(replace(what, seconds=seconds))


def readyz_body(port: int) -> Any:
    """The JSON `/readyz` answers (or its status and text if it is not JSON)."""
    status, body = request(port, "GET", "/readyz")
    try:
        return json.loads(body)
    except ValueError:
        return {"status": status, "body": body.decode(errors="replace")[:200]}


def check_answers(server: ServerProcess, bodies: list[tuple[int, Path]]) -> dict[str, Any]:
    """POST each (rows, body) once: a 200 with one prediction per row (where the server
    predicts)."""
    check: dict[str, Any] = {"ok": True, "problems": []}
    for rows, body in bodies:
        status, answer = request(server.port, "POST", "/predict", body.read_bytes(), timeout=60)
        problem = None
        if status != 200:
            problem = f"{rows}-row request answered {status}: {answer[:200]!r}"
        elif server.spec.checks_predictions:
            predictions = json.loads(answer).get("predictions")
            if not isinstance(predictions, list) or len(predictions) != rows:
                problem = f"{rows}-row request did not answer {rows} predictions"
        if problem:
            check["ok"] = False
            check["problems"].append(problem)
            logger.warning("%s: %s", server.spec.name, problem)
    return check


def payload_log_state(server: ServerProcess) -> dict[str, Any]:
    """After the loads (the server idle again): the request log entries the service dropped
    since it started (warm-ups and checks included), from /metrics, and what its directory
    holds so far (the open file is still being written)."""
    state: dict[str, Any] = {"dropped": None, "error": None}
    try:
        status, body = request(server.port, "GET", "/metrics")
    except (OSError, http.client.HTTPException) as exc:
        state["error"] = f"GET /metrics: {exc}"
    else:
        if status != 200:
            state["error"] = f"GET /metrics answered {status}"
        else:
            state["dropped"] = metric_value(body.decode("utf-8", errors="replace"), PAYLOAD_DROPPED)
            if state["dropped"] is None:
                state["error"] = f"no {PAYLOAD_DROPPED} on /metrics"
    if server.scratch is not None:
        files = [f for f in server.scratch.rglob("*") if f.is_file()]
        state["directory"] = str(server.scratch)
        state["files"] = len(files)
        state["bytes"] = sum(f.stat().st_size for f in files)
    if state["error"]:
        logger.warning("%s: %s", server.spec.name, state["error"])
    else:
        logger.info("%s: %d request log entries dropped", server.spec.name, state["dropped"])
    return state


def metric_value(exposition: str, name: str) -> int | None:
    """The value of an unlabelled metric `name` in a Prometheus exposition, as an integer."""
    for line in exposition.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return round(float(value.split()[0]))
    return None


def _log(name: str, what: str, m: Measurement, cost: RunCost) -> None:
    logger.info(
        "%s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, CPU-s/1k rows %s (os) %s (self)%s",
        name,
        what,
        m.requests_per_s,
        m.latency_p50_ms,
        m.latency_p99_ms,
        _per_1000(cost.os_per_1000),
        _per_1000(cost.self_per_1000),
        "" if m.valid else f" (INVALID: {m.non_2xx} non-2xx, {m.socket_errors} socket errors)",
    )
    if cost.covers_run is False:
        logger.warning(
            "%s %s: the service's cost figure covers %.3f s, more than the %.3f s around the run",
            name,
            what,
            cost.self_window_s,
            cost.span_s,
        )


def _per_1000(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
