"""`python -m benchmarks.run [--quick]`: train a bundle, measure every server, report.

Each round starts every selected server in turn on loopback, pinned to one CPU, with wrk on
the other; figures are medians over rounds. `service-litert` is also measured over gRPC, with
`benchmarks.grpc_load` in wrk's place. Then the service's defaults, request log and shadow
contenders and the FastAPI no-op are measured side by side (`benchmarks.paired`) for their
targets. Prints one table, the gRPC / REST ratios, the side-by-side ratios, and the ratios
with their targets, and writes `benchmarks/results/latest.json` plus a time-stamped copy.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_bodies, write_infer_requests
from benchmarks.bundle import TrainingFailed, describe, train_bundle
from benchmarks.catalog import ALL, server_specs
from benchmarks.cost import cost_window_seconds
from benchmarks.grpc_load import GENERATOR
from benchmarks.machine import describe_machine
from benchmarks.measure import Plan, measure_round
from benchmarks.paired import PairedPlan, compared, measure_paired
from benchmarks.process import Pinning, ServerSpec, stop_on_signals
from benchmarks.report import (
    arguments_record,
    cost_table,
    figures_table,
    grpc_table,
    paired_table,
    targets_table,
    write_json,
)
from benchmarks.summary import DEFAULTS_CONCURRENCY, grpc_ratios, summarise, targets

logger = logging.getLogger("benchmarks")

REPO = Path(__file__).resolve().parent.parent
MODEL_NAME = "bench"
SHADOW_SEED = 2
"""The seed of version 1, the shadow contender's shadow (version 2 has training's default):
two different models."""


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _servers(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(ALL)}")
    return [n for n in ALL if n in names]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line; `--quick` shortens the defaults that are not given explicitly."""
    p = argparse.ArgumentParser(prog="scripts/benchmark.sh", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, one round")
    p.add_argument("--duration", type=int, help="seconds per measurement (default 10, quick 3)")
    p.add_argument(
        "--max-duration",
        type=int,
        help="longest window for a server too slow for --duration (default 30, quick 20)",
    )
    p.add_argument("--warmup", type=int, help="seconds per warm-up run (default 2, quick 1)")
    p.add_argument("--rounds", type=int, help="rounds over all servers (default 3, quick 1)")
    p.add_argument("--servers", type=_servers, default=list(ALL), help=f"subset of {','.join(ALL)}")
    p.add_argument(
        "--concurrency", type=_ints, default=[16, 64], help="single-row connections (16,64)"
    )
    p.add_argument("--batch-concurrency", type=int, default=16, help="connections, large bodies")
    p.add_argument("--batch-rows", type=int, default=1000, help="rows per large request")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of the bundle")
    p.add_argument(
        "--paired-cycles",
        type=int,
        help="side-by-side windows per server for the defaults' and features' targets "
        "(default 12, quick 2; 0 skips them)",
    )
    p.add_argument(
        "--paired-seconds", type=int, help="seconds per side-by-side window (default 3, quick 2)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to CPUs")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3 if quick else 10)
    args.max_duration = max(args.duration, args.max_duration or (20 if quick else 30))
    args.warmup = args.warmup or (1 if quick else 2)
    args.rounds = args.rounds or (1 if quick else 3)
    if args.paired_cycles is None:
        args.paired_cycles = 2 if quick else 12
    args.paired_seconds = args.paired_seconds or (2 if quick else 3)
    if args.paired_cycles < 0:
        p.error("--paired-cycles must be at least 0")
    positive = ("duration", "warmup", "rounds", "batch_concurrency", "batch_rows", "epochs")
    for name in (*positive, "paired_seconds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def write_plan(args: argparse.Namespace, work: Path) -> Plan:
    """What every round measures, with its request bodies written into `work`."""
    bodies = write_bodies(work, [1, args.batch_rows])
    requests = write_infer_requests(work, [1, args.batch_rows], MODEL_NAME)
    return Plan(
        concurrencies=args.concurrency,
        batch_concurrency=args.batch_concurrency,
        batch_rows=args.batch_rows,
        seconds=args.duration,
        max_seconds=args.max_duration,
        warmup_seconds=args.warmup,
        single_body=bodies[1],
        batch_body=bodies[args.batch_rows],
        grpc_single_body=requests[1],
        grpc_batch_body=requests[args.batch_rows],
    )


def measure_all(
    args: argparse.Namespace,
    plan: Plan,
    specs: dict[str, ServerSpec],
    pinning: Pinning,
    work: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Every round of every selected server, interleaved so that drift hits all alike."""
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.servers}
    for number in range(1, args.rounds + 1):
        for name in args.servers:
            logger.info("round %d/%d: %s", number, args.rounds, name)
            record = measure_round(specs[name], plan, pinning, work)
            rounds[name].append({"round": number, **record})
    return rounds


def measure_side_by_side(
    args: argparse.Namespace,
    plan: Plan,
    specs: dict[str, ServerSpec],
    pinning: Pinning,
    work: Path,
) -> dict[str, Any] | None:
    """The defaults' and features' comparisons (`benchmarks.paired`), on the rounds'
    single-row body, if both sides of one are selected and --paired-cycles is not 0."""
    names = compared(args.servers)
    if not names or args.paired_cycles == 0:
        return None
    paired = PairedPlan(
        connections=DEFAULTS_CONCURRENCY,
        seconds=args.paired_seconds,
        cycles=args.paired_cycles,
        warmup_seconds=args.warmup,
        body=plan.single_body,
    )
    logger.info("side by side: %s, %d cycles", ", ".join(names), paired.cycles)
    return measure_paired(specs, names, paired, pinning, work)


def _servers_record(
    rounds: dict[str, list[dict[str, Any]]], summaries: dict[str, Any], seconds: int
) -> dict[str, Any]:
    """Per server: what it is, how it was started, its medians and every round's figures."""
    window = cost_window_seconds(seconds)
    specs = server_specs(Path("<model root>"), MODEL_NAME, Path("<version dir>"), window)
    return {
        name: {
            "description": specs[name].description,
            "command": {"args": specs[name].args, "env": specs[name].env},
            "summary": summaries[name],
            "rounds": rounds[name],
        }
        for name in rounds
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 if a server never produced figures, 2 if training failed."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop_on_signals()
    args = parse_args(argv)
    started = datetime.now(UTC)
    machine = describe_machine(REPO)
    pinning = Pinning.choose(not args.no_pin)
    clock = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tabserve-bench-") as tmp:
        work = Path(tmp)
        try:
            # Version 1 (a new directory's first) is the shadow contender's shadow; every
            # server serves version 2.
            train_bundle(work / "models", MODEL_NAME, args.epochs, SHADOW_SEED)
            version_dir = train_bundle(work / "models", MODEL_NAME, args.epochs)
        except TrainingFailed as exc:
            logger.critical("cannot train the bundle: %s", exc)
            return 2
        bundle = describe(version_dir)
        if not bundle["has_model_tflite"]:
            logger.warning("the bundle has no model.tflite: service-litert may use SavedModel")
        if pinning.server_cpu is not None and pinning.client_cpu is not None:
            os.sched_setaffinity(0, {pinning.client_cpu})  # keep ourselves off the server's CPU
            logger.info("servers on CPU %d, wrk on CPU %d", pinning.server_cpu, pinning.client_cpu)
        else:
            logger.warning("not pinning to CPUs (--no-pin, fewer than 2 CPUs or no taskset)")
        plan = write_plan(args, work)
        window = cost_window_seconds(args.duration)
        specs = server_specs(version_dir.parent.parent, MODEL_NAME, version_dir, window)
        rounds = measure_all(args, plan, specs, pinning, work)
        paired = measure_side_by_side(args, plan, specs, pinning, work)
    summaries = {name: summarise(r, args.concurrency) for name, r in rounds.items()}
    checks = targets(summaries, args.concurrency, args.batch_rows, paired)
    over_grpc = {
        name: grpc_ratios(
            s, rounds[name], args.concurrency, args.batch_rows, args.batch_concurrency
        )
        for name, s in summaries.items()
        if s["grpc"]
    }
    print(
        figures_table(
            summaries, args.concurrency, args.batch_rows, args.batch_concurrency, args.duration
        )
    )
    print("! = errors in that measurement (non-2xx or socket errors); see the JSON")
    print()
    print(cost_table(summaries, args.concurrency, args.batch_rows, args.batch_concurrency))
    print(
        "CPU-seconds per 1,000 rows: self = the service's own figure on /metrics, "
        "os = /proc/<pid>/stat over the rows the load generator got answered; both over the "
        "same run"
    )
    print()
    for name, ratios in over_grpc.items():
        print(grpc_table(name, ratios))
        print(f"gRPC: {GENERATOR}")
        print()
    if paired is not None:
        print(paired_table(paired))
        print()
    print(targets_table(checks))
    record = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "elapsed_s": round(time.monotonic() - clock, 1),
        "arguments": arguments_record(args),
        "machine": machine,
        "pinning": {"server_cpu": pinning.server_cpu, "client_cpu": pinning.client_cpu},
        "bundle": bundle,
        "servers": _servers_record(rounds, summaries, args.duration),
        "targets": [t.to_json() for t in checks],
        "grpc": {"load_generator": GENERATOR, "over_rest": over_grpc},
        "side_by_side": paired,
    }
    paths = write_json(record, args.results, started.strftime("%Y%m%dT%H%M%SZ"))
    logger.info("wrote %s", ", ".join(os.path.relpath(p) for p in paths))
    never = [name for name, s in summaries.items() if s["failed_rounds"] == s["rounds"]]
    if never:
        logger.error("no figures from: %s", ", ".join(never))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        logging.getLogger("benchmarks").warning("interrupted; servers stopped")
        sys.exit(130)
