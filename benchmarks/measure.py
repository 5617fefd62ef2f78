"""One server, one round: start it, time readiness, check, warm up, read memory, load it (over
REST with wrk, and for our service over gRPC with `benchmarks.grpc_load` too)."""

from __future__ import annotations

import http.client
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from app.grpc.protos import oip_v2_pb2 as pb
from benchmarks.catalog import PAYLOAD_LOG_ENV
from benchmarks.cost import CostMeter, RunCost
from benchmarks.grpc_load import MODEL_INFER, GrpcMeasurement, run_grpc_load
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
GRPC_TOLERANCE = 1e-4
"""A gRPC answer's prediction may differ from REST's for the same row by this, relatively: its
features travel as FP32, JSON's as float64."""


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
    grpc_single_body: Path | None = None
    grpc_batch_body: Path | None = None
    """Serialized ModelInferRequests of 1 and `batch_rows` rows, for servers also measured
    over gRPC (`ServerSpec.measure_grpc`)."""

    def over_grpc(self) -> Plan:
        """The same loads, with the gRPC requests as their bodies."""
        if self.grpc_single_body is None or self.grpc_batch_body is None:
            raise ValueError("the plan has no gRPC requests")
        return replace(self, single_body=self.grpc_single_body, batch_body=self.grpc_batch_body)

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
    client = pinning.prefix(pinning.client_cpu)
    meter = CostMeter(server, server.spec.cost_window_s)
    url = f"http://{HOST}:{server.port}/predict"
    driver = _Driver(server, plan, meter, lambda load: run_wrk(url, load, client))
    record["drain_s"] = driver.drained
    driver.warm_up()
    record["rss_mb"] = server.rss_mb()
    driver.measure(record, name)
    if server.spec.measure_grpc:
        _measure_grpc(server, plan, meter, client, record)
    if server.proc.poll() is not None:
        raise ServerFailed(f"{name} exited with status {server.proc.returncode} under load")
    if PAYLOAD_LOG_ENV in server.spec.env:
        record["payload_log"] = payload_log_state(server)
    record["log_tail"] = server.log_tail()


def _measure_grpc(
    server: ServerProcess, plan: Plan, meter: CostMeter, client: list[str], record: dict[str, Any]
) -> None:
    """The same loads over gRPC, into `record["grpc"]`: v2 ModelInfer with raw FP32 tensors,
    from `benchmarks.grpc_load` (a grpc.aio client, `connections` calls in flight)."""
    port = server.grpc_port
    if port is None:
        raise ServerFailed(f"{server.spec.name} has no gRPC port to measure")
    over_grpc = plan.over_grpc()
    out: dict[str, Any] = {"port": port, "single": {}, "batch": None}
    record["grpc"] = out
    out["check"] = check_grpc_answers(
        server,
        [(1, over_grpc.single_body), (plan.batch_rows, over_grpc.batch_body)],
        plan.single_body,
    )
    driver = _Driver(server, over_grpc, meter, lambda load: run_grpc_load(port, load, client))
    out["drain_s"] = driver.drained
    driver.warm_up()
    driver.measure(out, f"{server.spec.name} gRPC")


class _Driver:
    """Runs a load generator (`run`: wrk, or the gRPC one) against one server, and lets the
    server go idle after each run."""

    def __init__(
        self,
        server: ServerProcess,
        plan: Plan,
        meter: CostMeter,
        run: Callable[[Load], Measurement],
    ) -> None:
        self.server = server
        self.plan = plan
        self.meter = meter
        self.run = run
        self.drained: list[float] = []
        """Seconds the server stayed busy after each run (requests left in flight)."""

    def warm_up(self) -> None:
        """Single-row requests at the highest concurrency, then large requests."""
        plan = self.plan
        self.load(plan.single(max(plan.concurrencies), plan.warmup_seconds))
        self.load(plan.batch(plan.warmup_seconds))

    def measure(self, record: dict[str, Any], name: str) -> None:
        """Single-row requests at each concurrency, then large requests: each run's figures
        and cost into `record["single"][c]` and `record["batch"]` as they come."""
        plan = self.plan
        for connections in plan.concurrencies:
            result, cost = self.steady(plan.single(connections, plan.seconds))
            record["single"][str(connections)] = {**result.to_json(), "cost": cost.to_json()}
            _log(name, f"1 row c{connections}", result, cost)
        result, cost = self.steady(plan.batch(plan.seconds))
        record["batch"] = {**result.to_json(), "cost": cost.to_json()}
        _log(name, f"{plan.batch_rows} rows c{plan.batch_concurrency}", result, cost)

    def load(self, what: Load) -> Measurement:
        """One run (a warm-up), then wait until the server is idle again."""
        result = self.run(what)
        self.drained.append(round(self.server.wait_idle(), 2))
        return result

    def costed(self, what: Load) -> tuple[Measurement, RunCost]:
        """`load`, with what the run cost the server, read right before and right after the
        run (before the drain: the run's rows are the run's, and so must the CPU be)."""
        before = self.meter.before()
        result = self.run(what)
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


def check_grpc_answers(
    server: ServerProcess, bodies: list[tuple[int, Path]], rest_single_body: Path
) -> dict[str, Any]:
    """Call ModelInfer once with each (rows, serialized request): OK, with `predictions` of one
    FP64 per row in `raw_output_contents`; the single row's within `GRPC_TOLERANCE` of what
    `POST /predict` answers for the same row (the features in the right order)."""
    check: dict[str, Any] = {"ok": True, "problems": []}
    rest = _rest_single_prediction(server, rest_single_body)
    with grpc.insecure_channel(f"{HOST}:{server.grpc_port}") as channel:
        infer: grpc.UnaryUnaryMultiCallable[bytes, pb.ModelInferResponse] = channel.unary_unary(
            MODEL_INFER, response_deserializer=pb.ModelInferResponse.FromString
        )
        for rows, body in bodies:
            try:
                answer = infer(body.read_bytes(), timeout=60, wait_for_ready=True)
            except grpc.RpcError as exc:
                problem: str | None = f"{rows}-row call failed: {exc}"
            else:
                problem = _grpc_problem(answer, rows, rest)
            if problem:
                check["ok"] = False
                check["problems"].append(problem)
                logger.warning("%s gRPC: %s", server.spec.name, problem)
    return check


def _rest_single_prediction(server: ServerProcess, body: Path) -> float | None:
    """What `POST /predict` answers for the single row (None if it does not answer one)."""
    status, answer = request(server.port, "POST", "/predict", body.read_bytes(), timeout=60)
    try:
        return float(json.loads(answer)["predictions"][0]) if status == 200 else None
    except (ValueError, LookupError, TypeError):
        return None


def _grpc_problem(answer: pb.ModelInferResponse, rows: int, rest: float | None) -> str | None:
    """What is wrong with a ModelInfer answer to `rows` rows (None: nothing)."""
    if [o.name for o in answer.outputs] != ["predictions"] or len(answer.raw_output_contents) != 1:
        return f"{rows}-row call: outputs {[o.name for o in answer.outputs]}, not raw predictions"
    values = np.frombuffer(answer.raw_output_contents[0], dtype="<f8")
    if len(values) != rows:
        return f"{rows}-row call answered {len(values)} predictions"
    if rest is not None and abs(values[0] - rest) > GRPC_TOLERANCE * max(1.0, abs(rest)):
        return f"{rows}-row call predicted {values[0]:.6g} for the row REST predicts {rest:.6g}"
    return None


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
    client = (
        f", load generator {m.client_cpu_share:.2f} CPU" if isinstance(m, GrpcMeasurement) else ""
    )
    logger.info(
        "%s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, CPU-s/1k rows %s (os) %s (self)%s%s",
        name,
        what,
        m.requests_per_s,
        m.latency_p50_ms,
        m.latency_p99_ms,
        _per_1000(cost.os_per_1000),
        _per_1000(cost.self_per_1000),
        client,
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
