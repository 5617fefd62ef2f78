"""Medians over rounds, and the service's ratios to the reference servers with their targets."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.catalog import FASTAPI_SAVEDMODEL, KERAS, LITERT, NOOP, RAW, SAVEDMODEL, SERVICES

SINGLE_ROW_TARGETS = ((NOOP, 0.85), (RAW, 0.18), (FASTAPI_SAVEDMODEL, 3.0), (KERAS, 100.0))
"""Single-row requests/s of the service at least this many times the reference's."""
BATCH_TARGET = 0.7
"""Rows/s on large requests at least this fraction of the FastAPI no-op's."""
READY_TARGET = 1 / 3
"""LiteRT service ready in under this fraction of the SavedModel service's time."""
RSS_TARGET_MB = 150.0
"""LiteRT service resident memory under this."""

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
    return summary


def summarise(rounds: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    """One server's medians over its rounds."""
    n = len(rounds)
    ready = [r["ready_s"] for r in rounds if r.get("ready_s") is not None]
    rss = [r["rss_mb"] for r in rounds if r.get("rss_mb") is not None]
    single = {
        str(c): _load_summary([r["single"][str(c)] for r in rounds if str(c) in r["single"]], n)
        for c in concurrencies
    }
    batch = _load_summary([r["batch"] for r in rounds if r.get("batch")], n)
    return {
        "rounds": n,
        "failed_rounds": sum(1 for r in rounds if r.get("error")),
        "checks_ok": all(r.get("check", {}).get("ok", True) for r in rounds),
        "runtimes": sorted(
            {str(r["readyz"]["runtime"]) for r in rounds if "runtime" in (r.get("readyz") or {})}
        ),
        "ready_s": _median(ready),
        "rss_mb": _median(rss),
        "single": single,
        "batch": batch,
    }


@dataclass
class Target:
    """One ratio of each service to a reference, and the bound the LiteRT service must meet."""

    label: str
    op: str
    """">=" or "<"."""
    bound: float
    values: dict[str, float | None]
    """The ratio (or figure) per service; None when not measured."""
    valid: bool = True
    """False when a figure behind the LiteRT service's value had errors."""

    @property
    def verdict(self) -> str:
        """PASS or FAIL for the LiteRT service; n/a if unmeasured, INVALID if errors."""
        value = self.values.get(LITERT)
        if value is None:
            return "n/a"
        if not self.valid:
            return "INVALID"
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


def targets(summaries: dict[str, Any], concurrencies: list[int], batch_rows: int) -> list[Target]:
    """Every ratio the brief asks for, for both services, with the targets."""
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
    return out
