"""`python -m benchmarks.workers`: single-row requests/s of `WORKERS=2` against `WORKERS=1`,
with the load generator on the same machine.

Nothing is pinned: the server's processes (the supervisor and its workers, or the single
process) and wrk all run on every CPU this process may use (two, on the machine the target is
for), sharing them as the kernel schedules. Pinning a two-worker server to one CPU, as
`benchmarks.run` pins every server, would measure nothing. Each round starts both servers
afresh, in alternating order, on a bundle trained as `benchmarks.run` trains it; figures are
medians over the rounds, and the ratio of the medians is held to TARGET. `--pinned-reference`
also measures `WORKERS=1` as `benchmarks.run` does (server on the first CPU, wrk on the
second), for comparison.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.bodies import write_bodies
from benchmarks.bundle import TrainingFailed, train_bundle
from benchmarks.catalog import service_spec
from benchmarks.machine import describe_machine
from benchmarks.process import (
    HOST,
    IDLE_CPU_S,
    IDLE_WINDOW_S,
    Pinning,
    ServerFailed,
    ServerProcess,
    running,
    stop_on_signals,
)
from benchmarks.report import arguments_record, finish_record
from benchmarks.wrk import Load, WrkFailed, run_wrk

logger = logging.getLogger("benchmarks.workers")

REPO = Path(__file__).resolve().parent.parent
MODEL_NAME = "bench"
TARGET = 1.4
"""`WORKERS=2` single-row requests/s at least this many times `WORKERS=1`'s."""
LISTEN_TIMEOUT_S = 60.0
QUIET_BUSY = 0.10
"""The machine is quiet when its CPUs are less busy than this over QUIET_WINDOW_S."""
QUIET_WINDOW_S = 2.0
OTHER_CPUS_MAX = 0.1
"""A measurement during which other processes (neither the server, wrk nor the benchmark)
used more CPUs than this on average is disturbed: it is repeated, up to ATTEMPTS in all."""
ATTEMPTS = 3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.workers", description=__doc__.split("\n")[0]
    )
    p.add_argument("--workers", type=int, default=2, help="WORKERS of the contender (2)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, each server once (5)")
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement (10)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server (3)")
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of the bundle (30)")
    p.add_argument(
        "--quiet-wait",
        type=int,
        default=120,
        help="seconds to wait, before each server, for the machine to be quiet (120; 0: no wait)",
    )
    p.add_argument(
        "--pinned-reference",
        action="store_true",
        help="also measure WORKERS=1 pinned to the first CPU, wrk on the second",
    )
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    for name in ("workers", "rounds", "duration", "warmup", "concurrency", "epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.quiet_wait < 0:
        p.error("--quiet-wait must be at least 0")
    return args


def tree(server: ServerProcess) -> list[psutil.Process]:
    """The server process and its workers, if any."""
    root = psutil.Process(server.proc.pid)
    return [root, *root.children(recursive=True)]


def tree_cpu(server: ServerProcess) -> float:
    """User plus system CPU-seconds of the server's processes alive now."""
    total = 0.0
    for process in tree(server):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def machine_cpu() -> tuple[float, float]:
    """From /proc/stat, over every CPU: (seconds spent running processes, in user, nice and
    system time; seconds of CPU time in all)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    return sum(fields[:3]) / hz, sum(fields) / hz


def own_cpu() -> float:
    """CPU-seconds of this process and of its children reaped so far (wrk, once it has run)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(seconds: float) -> float | None:
    """Wait up to `seconds` for the machine to be quiet (other work would share the CPUs);
    the seconds waited, or None if it never was."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        before = machine_cpu()
        time.sleep(QUIET_WINDOW_S)
        after = machine_cpu()
        total = after[1] - before[1]
        if total and (after[0] - before[0]) / total < QUIET_BUSY:
            return round(time.monotonic() - started, 1)
    return None


def wait_listening(server: ServerProcess, workers: int) -> None:
    """Until the server's processes that serve (the workers, or the process itself) all listen
    on its port: readiness answers as soon as one worker does."""
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while time.monotonic() < deadline:
        serving = tree(server)[1:] if workers > 1 else tree(server)
        listening = [
            p
            for p in serving
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == server.port
                for c in p.net_connections(kind="tcp")
            )
        ]
        if len(serving) == workers and len(listening) == workers:
            return
        time.sleep(0.05)
    raise ServerFailed(f"{server.spec.name}: not {workers} listening workers in time")


def wait_idle(server: ServerProcess) -> None:
    """Until every process of the server has finished what wrk left in flight."""
    before = tree_cpu(server)
    for _ in range(400):
        time.sleep(IDLE_WINDOW_S)
        after = tree_cpu(server)
        if after - before < IDLE_CPU_S * 2:
            return
        before = after
    raise ServerFailed(f"{server.spec.name} still busy after its load")


def measure(
    name: str,
    workers: int,
    pinning: Pinning,
    *,
    model_root: Path,
    body: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One server, one round: ready, every worker listening, warm, then one wrk run."""
    spec = service_spec(
        model_root,
        MODEL_NAME,
        "litert",
        name=name,
        description=f"python -m app, WORKERS={workers}",
        env={"WORKERS": str(workers)},
    )
    client = pinning.prefix(pinning.client_cpu)
    record: dict[str, Any] = {"name": name, "workers": workers, "error": None}
    if args.quiet_wait:
        record["quiet_wait_s"] = wait_quiet(args.quiet_wait)
        if record["quiet_wait_s"] is None:
            logger.warning("the machine was busy for %d s: measuring anyway", args.quiet_wait)
    with running(spec, model_root.parent, pinning) as server:
        try:
            record["ready_s"] = server.wait_ready()
            wait_listening(server, workers)
            url = f"http://{HOST}:{server.port}/predict"
            run_wrk(url, Load(args.concurrency, args.warmup, body, 1), client)
            wait_idle(server)
            before = (tree_cpu(server), own_cpu(), machine_cpu())
            result = run_wrk(url, Load(args.concurrency, args.duration, body, 1), client)
            after = (tree_cpu(server), own_cpu(), machine_cpu())
            cpu, ours = after[0] - before[0], after[1] - before[1]
            running_s, total_s = (a - b for a, b in zip(after[2], before[2], strict=True))
            other = max(0.0, running_s - cpu - ours)
            processes = tree(server)
            names = ["supervisor" if workers > 1 else "server"] + [
                f"worker {p.pid}" for p in processes[1:]
            ]
            record |= {
                **result.to_json(),
                "server_cpu_s": round(cpu, 3),
                "cpu_s_per_1000": cpu / result.requests * 1000 if result.requests else None,
                "server_cpus": round(cpu / result.seconds, 2) if result.seconds else None,
                "machine_busy_pct": round(running_s / total_s * 100, 1) if total_s else None,
                "wrk_and_benchmark_cpu_s": round(ours, 3),
                "other_cpus": round(other / result.seconds, 2) if result.seconds else None,
                "rss_mb": {
                    role: round(p.memory_info().rss / 2**20, 1)
                    for role, p in zip(names, processes, strict=True)
                },
            }
        except (ServerFailed, WrkFailed, OSError, psutil.Error) as exc:
            record["error"] = str(exc)
            record["log_tail"] = server.log_tail()
            logger.error("%s: %s", name, exc)
    if record["error"] is None:
        logger.info(
            "%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, server %.2f CPUs, others %.2f CPUs",
            name,
            record["requests_per_s"],
            record["latency_p50_ms"],
            record["latency_p99_ms"],
            record["server_cpus"],
            record["other_cpus"],
        )
    return record


def measure_undisturbed(
    name: str,
    workers: int,
    pinning: Pinning,
    *,
    model_root: Path,
    body: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`measure`, again (after waiting for quiet) while other processes disturbed it."""
    for attempt in range(1, ATTEMPTS + 1):
        record = measure(name, workers, pinning, model_root=model_root, body=body, args=args)
        other = record.get("other_cpus")
        record |= {"attempt": attempt, "disturbed": other is not None and other > OTHER_CPUS_MAX}
        if not record["disturbed"]:
            break
        logger.warning("%s: other processes used %.2f CPUs meanwhile", name, other)
    return record


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds that produced figures, and whether every round was valid."""
    good = [r for r in records if r["error"] is None]

    def median(key: str) -> float | None:
        values = [r[key] for r in good if r.get(key) is not None]
        return statistics.median(values) if values else None

    rss = [sum(r["rss_mb"].values()) for r in good]
    return {
        "rounds": len(records),
        "failed_rounds": len(records) - len(good),
        "valid": bool(good) and all(r["valid"] for r in good),
        "disturbed_rounds": sum(1 for r in good if r["disturbed"]),
        "requests_per_s": median("requests_per_s"),
        "latency_p50_ms": median("latency_p50_ms"),
        "latency_p99_ms": median("latency_p99_ms"),
        "cpu_s_per_1000": median("cpu_s_per_1000"),
        "server_cpus": median("server_cpus"),
        "machine_busy_pct": median("machine_busy_pct"),
        "other_cpus": median("other_cpus"),
        "rss_mb_total": statistics.median(rss) if rss else None,
        "rss_mb_last_round": good[-1]["rss_mb"] if good else None,
    }


def table(summaries: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'server':<24} {'req/s':>7}  {'p50 ms':>7} {'p99 ms':>7}  {'CPU-s/1k':>8}  "
        f"{'server CPUs':>11}  {'busy %':>6}  {'other CPUs':>10}  {'RSS MB':>6}"
    )
    lines = [header]
    for name, s in summaries.items():

        def cell(key: str, digits: int, s: dict[str, Any] = s) -> str:
            value = s.get(key)
            return "-" if value is None else f"{value:,.{digits}f}"

        lines.append(
            f"{name:<24} {cell('requests_per_s', 0):>7}  {cell('latency_p50_ms', 2):>7} "
            f"{cell('latency_p99_ms', 2):>7}  {cell('cpu_s_per_1000', 3):>8}  "
            f"{cell('server_cpus', 2):>11}  {cell('machine_busy_pct', 0):>6}  "
            f"{cell('other_cpus', 2):>10}  {cell('rss_mb_total', 0):>6}"
            + ("" if s["valid"] else "  (errors)")
            + (f"  ({s['disturbed_rounds']} disturbed)" if s["disturbed_rounds"] else "")
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """0 when figures were written (whatever the verdict), 1 if a server never produced one,
    2 if the bundle could not be trained."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop_on_signals()
    args = parse_args(argv)
    started, clock = datetime.now(UTC), time.monotonic()
    cpus = sorted(os.sched_getaffinity(0))
    one, many = "service-litert-workers1", f"service-litert-workers{args.workers}"
    configs: list[tuple[str, int, Pinning]] = [
        (one, 1, Pinning(None, None)),
        (many, args.workers, Pinning(None, None)),
    ]
    if args.pinned_reference and len(cpus) >= 2:
        configs.append(("service-litert-pinned", 1, Pinning(cpus[0], cpus[1])))
    record: dict[str, Any] = {
        "started_at": started.isoformat(),
        "arguments": arguments_record(args),
        "machine": describe_machine(REPO),
        "cpus": cpus,
        "sharing": "unpinned: the server's processes and wrk on every CPU listed",
    }
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    with tempfile.TemporaryDirectory(prefix="tabserve-workers-") as tmp:
        work = Path(tmp)
        try:
            train_bundle(work / "models", MODEL_NAME, args.epochs)
        except TrainingFailed as exc:
            logger.critical("cannot train the bundle: %s", exc)
            return 2
        body = write_bodies(work, [1])[1]
        for number in range(1, args.rounds + 1):
            order = configs[:2] if number % 2 else configs[1::-1]
            for name, workers, pinning in [*order, *configs[2:]]:
                logger.info("round %d/%d: %s", number, args.rounds, name)
                measured = measure_undisturbed(
                    name, workers, pinning, model_root=work / "models", body=body, args=args
                )
                rounds[name].append({"round": number, **measured})
    summaries = {name: summary(r) for name, r in rounds.items()}
    base, contender = summaries[one]["requests_per_s"], summaries[many]["requests_per_s"]
    ratio = contender / base if base and contender else None
    per_round = [
        a["requests_per_s"] / b["requests_per_s"]
        for a, b in zip(rounds[many], rounds[one], strict=True)
        if a["error"] is None and b["error"] is None
    ]
    valid = all(summaries[n]["valid"] and not summaries[n]["disturbed_rounds"] for n in (one, many))
    verdict = "n/a" if ratio is None else "INVALID" if not valid else "PASS"
    if ratio is not None and valid and ratio < TARGET:
        verdict = "FAIL"
    print(table(summaries))
    print(
        f"\n1-row req/s c{args.concurrency} {many} / {one}: "
        + ("-" if ratio is None else f"{ratio:.2f}")
        + f" (target >= {TARGET}): {verdict}; per round: "
        + ", ".join(f"{r:.2f}" for r in per_round)
    )
    print(f"CPUs {cpus}, unpinned: the server's processes and wrk share them")
    record |= {
        "servers": {name: {"summary": summaries[name], "rounds": rounds[name]} for name in rounds},
        "target": {
            "label": f"1-row req/s c{args.concurrency} {many} / {one}",
            "op": ">=",
            "bound": TARGET,
            "value": ratio,
            "per_round": per_round,
            "verdict": verdict,
        },
    }
    never = [name for name, s in summaries.items() if s["failed_rounds"] == s["rounds"]]
    status = 1 if never else 0
    return finish_record(
        record, args.results, started=started, clock=clock, status=status, prefix="workers"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        logging.getLogger("benchmarks.workers").warning("interrupted; servers stopped")
        sys.exit(130)
