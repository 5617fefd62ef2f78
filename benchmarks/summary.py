"""Medians over rounds, the service's ratios to the reference servers with their targets, and
its gRPC figures' ratios to its REST ones."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.catalog import (
    DEFAULTS,
    FASTAPI_SAVEDMODEL,
    KERAS,
    LITERT,
    LITERT_PAYLOAD,
    LITERT_SHADOW,
    NOOP,
    RAW,
    SAVEDMODEL,
    SERVICES,
)

SINGLE_ROW_TARGETS = ((NOOP, 0.85), (RAW, 0.18), (FASTAPI_SAVEDMODEL, 3.0), (KERAS, 100.0))
"""Single-row requests/s of the service at least this many times the reference's."""
BATCH_TARGET = 0.7
"""Rows/s on large requests at least this fraction of the FastAPI no-op's."""
READY_TARGET = 1 / 3
"""LiteRT service ready in under this fraction of the SavedModel service's time."""
RSS_TARGET_MB = 150.0
"""LiteRT service resident memory under this."""
SELF_COST_BOUNDS = (0.75, 1.33)
"""The service's own CPU-seconds per 1,000 rows (/metrics) within this factor of the OS's
(/proc) over the same run: the live figure an operator reads is the bill's."""
DEFAULTS_CONCURRENCY = 16
"""The single-row concurrency the targets of the service's defaults and request log hold at."""
DEFAULTS_TARGET = 1.0
"""The service with its defaults (access log, drift) at least as fast as the FastAPI no-op."""
PAYLOAD_TARGET = 0.8
"""With the request log on, at least this fraction of the same service with it off."""
PAYLOAD_DROPPED_TARGET = 0
"""Request log entries dropped by the request-log contender under the side-by-side load."""
SHADOW_TARGET = 0.85
"""With a shadow version scoring every request, at least this fraction of the same service
without one."""
GRPC_BATCH_TARGET = 1.0
"""Rows/s on large requests over gRPC (raw FP32 tensors) above this times REST's, same server,
same run."""

FIGURES = (
    "requests_per_s",
    "rows_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _load_summary(samples: list[dict[str, Any]], rounds: int) -> dict[str, Any] | None:
    """Median of each figure over the rounds' wrk runs; valid only if every round was."""
    if not samples:
        return None
    summary: dict[str, Any] = {f: _median([s[f] for s in samples]) for f in FIGURES}
    summary["samples"] = len(samples)
    summary["longest_window_s"] = max(s["seconds"] for s in samples)
    summary["non_2xx"] = sum(s["non_2xx"] for s in samples)
    summary["socket_errors"] = sum(s["socket_errors"] for s in samples)
    summary["valid"] = len(samples) == rounds and all(s["valid"] for s in samples)
    summary["cost"] = _cost_summary([s["cost"] for s in samples if s.get("cost")])
    shares = [s["client_cpu_share"] for s in samples if s.get("client_cpu_share") is not None]
    if shares:  # the gRPC load generator's own CPU
        summary["client_cpu_share"] = _median(shares)
    return summary


def _cost_summary(costs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of CPU-seconds per 1,000 rows over the rounds, each way, and of each round's
    self / os (a ratio of the same run, not of the medians)."""

    def median(key: str) -> float | None:
        return _median([c[key] for c in costs if c.get(key) is not None])

    covers = [c["covers_run"] for c in costs if c.get("covers_run") is not None]
    return {
        "os_per_1000": median("os_per_1000"),
        "self_per_1000": median("self_per_1000"),
        "self_over_os": median("self_over_os"),
        "self_covers_run": all(covers) if covers else None,
        "self_errors": [c["self_error"] for c in costs if c.get("self_error")],
    }


def _loads_summary(
    records: list[dict[str, Any]], concurrencies: list[int], rounds: int
) -> dict[str, Any]:
    """`single` (per concurrency) and `batch` medians over the rounds' records of one protocol."""
    return {
        "single": {
            str(c): _load_summary(
                [r["single"][str(c)] for r in records if str(c) in r["single"]], rounds
            )
            for c in concurrencies
        },
        "batch": _load_summary([r["batch"] for r in records if r.get("batch")], rounds),
    }


def summarise(rounds: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    """One server's medians over its rounds (and over gRPC, where it was measured so)."""
    n = len(rounds)
    ready = [r["ready_s"] for r in rounds if r.get("ready_s") is not None]
    rss = [r["rss_mb"] for r in rounds if r.get("rss_mb") is not None]
    grpc = [r["grpc"] for r in rounds if r.get("grpc")]
    logs = [r["payload_log"] for r in rounds if r.get("payload_log")]
    dropped = [log["dropped"] for log in logs if log.get("dropped") is not None]
    return {
        "rounds": n,
        "failed_rounds": sum(1 for r in rounds if r.get("error")),
        "checks_ok": all(r.get("check", {}).get("ok", True) for r in rounds),
        "runtimes": sorted(
            {str(r["readyz"]["runtime"]) for r in rounds if "runtime" in (r.get("readyz") or {})}
        ),
        "ready_s": _median(ready),
        "rss_mb": _median(rss),
        **_loads_summary(rounds, concurrencies, n),
        "grpc": {
            "checks_ok": all(g.get("check", {}).get("ok", True) for g in grpc),
            **_loads_summary(grpc, concurrencies, n),
        }
        if grpc
        else None,
        "payload_log": {
            "dropped": sum(dropped) if dropped else None,
            "rounds_read": len(dropped),
            "complete": len(dropped) == n,
        }
        if logs
        else None,
    }


@dataclass
class Target:
    """One ratio (or figure) of each service, and the bound `subject` must meet."""

    label: str
    op: str
    """">=", "<", "==" or "within"."""
    bound: float
    values: dict[str, float | None]
    """The ratio (or figure) per service; None when not measured."""
    valid: bool = True
    """False when a figure behind the subject's value had errors."""
    upper: float | None = None
    """With op "within": the value must lie in [bound, upper]."""
    subject: str = LITERT
    """The server the verdict is for: `service-litert` for the service's own targets (one column
    per service), or the contender a target of the defaults or the request log is about."""
    unmeasured: str = "n/a"
    """The verdict when the subject has no value (not run, or failed)."""

    @property
    def verdict(self) -> str:
        """PASS or FAIL for the subject; `unmeasured` if no value, INVALID if errors."""
        value = self.values.get(self.subject)
        if value is None:
            return self.unmeasured
        if not self.valid:
            return "INVALID"
        if self.op == "within" and self.upper is not None:
            met = self.bound <= value <= self.upper
        elif self.op == "==":
            met = value == self.bound
        else:
            met = value >= self.bound if self.op == ">=" else value < self.bound
        return "PASS" if met else "FAIL"

    def to_json(self) -> dict[str, Any]:
        """Everything, with the verdict."""
        return {**asdict(self), "verdict": self.verdict}


def _figure(summary: dict[str, Any] | None, *path: str) -> tuple[float | None, bool]:
    """A figure (and whether it is valid) from a server summary; (None, False) if missing."""
    node: Any = summary
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or node.get(path[-1]) is None:
        return None, False
    return float(node[path[-1]]), bool(node.get("valid", True))


def _ratio(
    summaries: dict[str, Any], service: str, reference: str, *path: str
) -> tuple[float | None, bool]:
    top, top_ok = _figure(summaries.get(service), *path)
    bottom, bottom_ok = _figure(summaries.get(reference), *path)
    if top is None or not bottom:
        return None, False
    return top / bottom, top_ok and bottom_ok


def targets(
    summaries: dict[str, Any],
    concurrencies: list[int],
    batch_rows: int,
    paired: dict[str, Any] | None,
) -> list[Target]:
    """Every ratio the brief asks for, for both services, with the targets; those of the
    service's defaults and features from the side-by-side comparison `paired`."""
    out: list[Target] = []

    def add(label: str, op: str, bound: float, reference: str, *path: str) -> None:
        values, valid = {}, True
        for service in SERVICES:
            values[service], ok = _ratio(summaries, service, reference, *path)
            if service == LITERT:
                valid = ok
        out.append(Target(label, op, bound, values, valid))

    for c in concurrencies:
        for reference, bound in SINGLE_ROW_TARGETS:
            add(
                f"1-row req/s c{c} / {reference}",
                ">=",
                bound,
                reference,
                "single",
                str(c),
                "requests_per_s",
            )
    add(f"{batch_rows}-row rows/s / {NOOP}", ">=", BATCH_TARGET, NOOP, "batch", "rows_per_s")
    ready, _ = _ratio(summaries, LITERT, SAVEDMODEL, "ready_s")
    out.append(Target(f"ready time / {SAVEDMODEL}'s", "<", READY_TARGET, {LITERT: ready}, True))
    rss = {s: (summaries.get(s) or {}).get("rss_mb") for s in SERVICES}
    out.append(Target("RSS MB", "<", RSS_TARGET_MB, rss, True))
    loads = [(f"c{c}", ("single", str(c))) for c in concurrencies]
    out += [
        _self_cost(summaries, label, path)
        for label, path in [*loads, (f"{batch_rows}-row", ("batch",))]
    ]
    return out + feature_targets(paired)


def feature_targets(paired: dict[str, Any] | None) -> list[Target]:
    """From the side-by-side comparison (`benchmarks.paired`): the service with its defaults
    against the FastAPI no-op, the request log's and a shadow version's cost against the same
    service without them, and the entries the log dropped under that load."""
    c = str(DEFAULTS_CONCURRENCY if paired is None else paired["connections"])
    found = (paired or {}).get("comparisons") or {}
    out = []
    for subject, reference, bound in (
        (DEFAULTS, NOOP, DEFAULTS_TARGET),
        (LITERT_PAYLOAD, DEFAULTS, PAYLOAD_TARGET),
        (LITERT_SHADOW, DEFAULTS, SHADOW_TARGET),
    ):
        comparison = found.get(subject) or {}
        label = f"1-row req/s c{c} {subject} / {reference}, side by side"
        value = comparison.get("ratio")
        valid = bool(comparison.get("valid"))
        out.append(Target(label, ">=", bound, {subject: value}, valid, subject=subject))
    log = (paired or {}).get("payload_log") or {}
    dropped = log.get("dropped")
    out.append(
        Target(
            f"payload log entries dropped, 1-row c{c} side by side",
            "==",
            PAYLOAD_DROPPED_TARGET,
            {LITERT_PAYLOAD: None if dropped is None else float(dropped)},
            log.get("error") is None,
            subject=LITERT_PAYLOAD,
            unmeasured="INVALID" if LITERT_PAYLOAD in found else "n/a",
        )
    )
    return out


def _self_cost(summaries: dict[str, Any], label: str, path: tuple[str, ...]) -> Target:
    """The service's own CPU-s per 1,000 rows over the OS's, on the run `path` names.

    Invalid when that run had errors (wrk's answers are the OS figure's rows) or the
    service's figure spanned more than the run."""
    values: dict[str, float | None] = {}
    valid = True
    for service in SERVICES:
        load: Any = summaries.get(service)
        for key in path:
            load = load.get(key) if isinstance(load, dict) else None
        load = load or {}
        cost = load.get("cost") or {}
        values[service] = cost.get("self_over_os")
        if service == LITERT:
            valid = bool(load.get("valid")) and cost.get("self_covers_run") is not False
    low, high = SELF_COST_BOUNDS
    return Target(f"CPU-s/1k rows {label}, self / os", "within", low, values, valid, high)


def grpc_ratios(
    summary: dict[str, Any],
    rounds: list[dict[str, Any]],
    concurrencies: list[int],
    batch_rows: int,
    batch_c: int,
) -> list[dict[str, Any]]:
    """One server over gRPC against itself over REST, load by load: requests/s of single-row
    requests per concurrency, rows/s of large ones (held to `GRPC_BATCH_TARGET`); the ratio of
    the medians and each round's own ratio."""
    loads: list[tuple[str, tuple[str, ...], float | None]] = [
        (f"1-row c{c} req/s", ("single", str(c), "requests_per_s"), None) for c in concurrencies
    ]
    loads.append(
        (f"{batch_rows}-row c{batch_c} rows/s", ("batch", "rows_per_s"), GRPC_BATCH_TARGET)
    )
    out = []
    for label, path, bound in loads:
        rest, rest_ok = _figure(summary, *path)
        grpc, grpc_ok = _figure(summary.get("grpc"), *path)
        ratio = grpc / rest if grpc is not None and rest else None
        per_round = []
        for r in rounds:
            top, bottom = _figure(r.get("grpc"), *path)[0], _figure(r, *path)[0]
            if top is not None and bottom:
                per_round.append(top / bottom)
        valid = rest_ok and grpc_ok
        verdict = None
        if bound is not None:
            verdict = "n/a" if ratio is None else "INVALID" if not valid else "FAIL"
            if ratio is not None and valid and ratio > bound:
                verdict = "PASS"
        out.append(
            {
                "load": label,
                "figure": path[-1],
                "rest": rest,
                "grpc": grpc,
                "ratio": ratio,
                "per_round": per_round,
                "valid": valid,
                "target": None if bound is None else f"> {bound:g}",
                "verdict": verdict,
            }
        )
    return out
