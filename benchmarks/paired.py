"""The service's defaults against the FastAPI no-op, and each feature against the defaults,
measured side by side.

Rounds (`benchmarks.run`) measure one server at a time, a minute or more apart. On a shared
machine the other tenants' load changes by more than these targets look at: the no-op alone
has ranged from 4,028 to 6,296 req/s between rounds of one run. Here the servers of the
comparisons run at once, all pinned to the server CPU (an idle one costs nothing), and short
single-row windows at one concurrency alternate between them, in one order and then the
reverse (A B C D, D C B A, ...), so that every server is measured as often early as late in
each pair of cycles. A cycle's ratio compares two servers a few seconds apart; the figure is
the median of the cycles' ratios.

The request log contender is started for this alone, so the entries it drops are those of
this load.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.catalog import DEFAULTS, LITERT_PAYLOAD, LITERT_SHADOW, NOOP, PAYLOAD_LOG_ENV
from benchmarks.cost import CostMeter
from benchmarks.measure import check_answers, payload_log_state
from benchmarks.process import HOST, Pinning, ServerFailed, ServerProcess, ServerSpec, running
from benchmarks.wrk import Load, WrkFailed, run_wrk

logger = logging.getLogger(__name__)

COMPARISONS = ((DEFAULTS, NOOP), (LITERT_PAYLOAD, DEFAULTS), (LITERT_SHADOW, DEFAULTS))
"""(subject, reference): each subject's single-row requests/s over its reference's."""


@dataclass(frozen=True)
class PairedPlan:
    """Windows of `seconds` of single-row requests over `connections`, `cycles` times per
    server, after a warm-up of `warmup_seconds` each."""

    connections: int
    seconds: int
    cycles: int
    warmup_seconds: int
    body: Path


def compared(servers: list[str]) -> list[str]:
    """The servers of `servers` that some comparison needs, both its sides selected; in the
    order of `COMPARISONS`."""
    needed: list[str] = []
    for subject, reference in COMPARISONS:
        if subject in servers and reference in servers:
            needed += [s for s in (subject, reference) if s not in needed]
    return needed


def measure_paired(
    specs: dict[str, ServerSpec], names: list[str], plan: PairedPlan, pinning: Pinning, work: Path
) -> dict[str, Any]:
    """Every window of every server in `names`, each comparison's ratios, and the request log
    contender's dropped entries; a failure is recorded in `error`, not raised."""
    record: dict[str, Any] = {
        "connections": plan.connections,
        "seconds": plan.seconds,
        "cycles": plan.cycles,
        "error": None,
        "windows": {name: [] for name in names},
    }
    log_dir = work / "paired"
    log_dir.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(running(specs[n], log_dir, pinning)) for n in names]
        try:
            _measure(servers, plan, pinning, record)
        except (ServerFailed, WrkFailed, OSError) as exc:
            record["error"] = str(exc)
            logger.error("paired comparison: %s", exc)
    record["comparisons"] = comparisons(record["windows"])
    return record


def _measure(
    servers: list[ServerProcess], plan: PairedPlan, pinning: Pinning, record: dict[str, Any]
) -> None:
    client = pinning.prefix(pinning.client_cpu)
    for server in servers:
        server.wait_ready()
        check = check_answers(server, [(1, plan.body)])
        if not check["ok"]:
            raise ServerFailed(f"{server.spec.name}: {'; '.join(check['problems'])}")

    def window(server: ServerProcess, seconds: int) -> dict[str, Any]:
        url = f"http://{HOST}:{server.port}/predict"
        meter = CostMeter(server, None)  # the process's CPU only: no /metrics reads mid-cycle
        before = meter.before()
        result = run_wrk(url, Load(plan.connections, seconds, plan.body, 1), client)
        cost = meter.after(before, result)
        server.wait_idle()  # what it left in flight is not the next server's to pay for
        return {**result.to_json(), "cpu_s_per_1000": cost.os_per_1000}

    for server in servers:
        window(server, plan.warmup_seconds)
    for cycle in range(plan.cycles):
        order = servers if cycle % 2 == 0 else servers[::-1]
        for server in order:
            figures = window(server, plan.seconds)
            record["windows"][server.spec.name].append(figures)
        logger.info(
            "paired cycle %d/%d: %s",
            cycle + 1,
            plan.cycles,
            ", ".join(
                f"{s.spec.name} {record['windows'][s.spec.name][-1]['requests_per_s']:,.0f}"
                for s in servers
            ),
        )
    for server in servers:
        if server.proc.poll() is not None:
            raise ServerFailed(f"{server.spec.name} exited with status {server.proc.returncode}")
        if PAYLOAD_LOG_ENV in server.spec.env:
            record["payload_log"] = payload_log_state(server)


def comparisons(windows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per comparison whose servers were both measured: every cycle's ratio, their median,
    and whether every window behind them was valid (all answers 2xx, no socket error)."""
    out: dict[str, dict[str, Any]] = {}
    for subject, reference in COMPARISONS:
        top, bottom = windows.get(subject) or [], windows.get(reference) or []
        cycles = [
            (a["requests_per_s"] / b["requests_per_s"], a["valid"] and b["valid"])
            for a, b in zip(top, bottom, strict=False)
            if b["requests_per_s"] > 0
        ]
        if not cycles:
            continue
        ratios = [r for r, _ in cycles]
        out[subject] = {
            "reference": reference,
            "ratio": statistics.median(ratios),
            "per_cycle": [round(r, 3) for r in ratios],
            "valid": all(ok for _, ok in cycles),
        }
    return out
