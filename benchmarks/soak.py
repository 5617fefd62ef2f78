"""`python -m benchmarks.soak`: hold the service under load for a while; did anything leak?

One `python -m app` on loopback, a short warm-up, then wrk at a fixed concurrency until the
window or the request budget runs out, sampling the server's resident memory every second.
Passes when no request failed, memory grew by less than 10 %, and `/readyz` still answers 200.
Exit status: 0 passed, 1 failed, 2 could not run.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bodies import write_bodies
from benchmarks.bundle import TrainingFailed, describe, train_bundle
from benchmarks.catalog import service_spec
from benchmarks.machine import describe_machine
from benchmarks.measure import check_answers, readyz_body
from benchmarks.options import CannotRun, positive_int
from benchmarks.process import (
    HOST,
    Pinning,
    ServerFailed,
    ServerProcess,
    request,
    running,
    stop_on_signals,
)
from benchmarks.report import arguments_record, finish_record
from benchmarks.wrk import WrkFailed, run_summary, wrk_argv

logger = logging.getLogger("benchmarks.soak")

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("soak.lua")
MODEL_NAME = "soak"
RUNTIMES = ("litert", "savedmodel", "litert-quantized", "auto")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MIX_EVERY = 20
MIX_ROWS = 100
MAX_GROWTH_PCT = 10.0
REQUEST_TIMEOUT_S = 10
"""A request unanswered this long is an error. Unlike the benchmark's windows, a soak's is
long, and a request stuck for most of it must not pass as merely slow."""
WRK_GRACE_S = 60
"""How much longer than its window wrk may take before it is killed and the run fails."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(prog="scripts/soak.sh", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=positive_int, default=60, help="seconds measured (60)")
    p.add_argument(
        "--max-requests",
        type=positive_int,
        default=2_000_000,
        help="stop once this many requests were answered, even before --duration (2,000,000)",
    )
    p.add_argument("--concurrency", type=positive_int, default=64, help="connections (64)")
    p.add_argument("--rows", type=positive_int, default=1, help="rows per request (1)")
    p.add_argument(
        "--mix",
        action="store_true",
        help=f"make every {MIX_EVERY}th request {MIX_ROWS} rows instead of --rows",
    )
    p.add_argument("--warmup", type=positive_int, default=5, help="seconds of warm-up (5)")
    p.add_argument("--runtime", choices=RUNTIMES, default="litert", help="MODEL_RUNTIME (litert)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="LOG_LEVEL (warning)")
    p.add_argument(
        "--bundle",
        type=Path,
        help="serve this bundle (models/<name>/<version> or models/<name>, diabetes features) "
        "instead of training one",
    )
    p.add_argument("--epochs", type=positive_int, default=30, help="epochs of the trained bundle")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to CPUs")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args(argv)


@dataclass
class Memory:
    """Resident memory of the server over the measured period, in MiB."""

    server: ServerProcess
    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the start of the measured period, RSS MiB)."""
    lost: str | None = None
    """Why sampling stopped (the process was gone), if it did."""

    def sample(self) -> None:
        """Record the RSS now; never raises, since it runs while wrk holds the load."""
        if self.lost is not None:
            return
        try:
            rss = self.server.rss_mb()
        except (OSError, ServerFailed) as exc:
            self.lost = str(exc)
            return
        self.samples.append((round(time.monotonic() - self.started, 2), round(rss, 2)))

    def summary(self) -> dict[str, Any]:
        """Start, end, peak and growth of end over start, with every sample."""
        values = [mb for _, mb in self.samples]
        start, end = (values[0], values[-1]) if values else (None, None)
        growth = (end - start) / start * 100 if start and end is not None else None
        return {
            "start_mb": start,
            "end_mb": end,
            "peak_mb": max(values) if values else None,
            "growth_pct": None if growth is None else round(growth, 2),
            "samples": self.samples,
            "sampling_stopped": self.lost,
        }


def _figures(raw: dict[str, Any], rows_per_request: float) -> dict[str, Any]:
    """One wrk run's figures; latencies in milliseconds."""
    seconds = raw["duration_us"] / 1e6
    rate = raw["requests"] / seconds if seconds > 0 else 0.0
    socket = {k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")}
    return {
        "seconds": round(seconds, 3),
        "requests": raw["requests"],
        "requests_per_s": round(rate, 1),
        "rows_per_s": round(rate * rows_per_request, 1),
        "errors": sum(socket.values()) + raw["non_2xx"],
        **socket,
        "non_2xx": raw["non_2xx"],
        "latency_ms": {
            name: round(raw[f"latency_{key}_us"] / 1000, 3)
            for name, key in (
                ("p50", "p50"),
                ("p90", "p90"),
                ("p99", "p99"),
                ("p99.9", "p999"),
                ("max", "max"),
                ("mean", "mean"),
            )
        },
    }


@dataclass(frozen=True)
class Load:
    """What wrk sends, and how it is bounded."""

    url: str
    connections: int
    max_requests: int
    small: tuple[int, Path]
    large: tuple[int, Path] | None
    """Sent instead of `small` on every `MIX_EVERY`th request, if given."""
    prefix: list[str]

    @property
    def rows_per_request(self) -> float:
        """Average rows per request."""
        if self.large is None:
            return float(self.small[0])
        return ((MIX_EVERY - 1) * self.small[0] + self.large[0]) / MIX_EVERY

    def run(self, seconds: int, memory: Memory | None = None) -> dict[str, Any]:
        """One wrk run of at most `seconds`, sampling `memory` every second meanwhile."""
        script_args = [str(self.max_requests), str(self.small[1])]
        if self.large is not None:
            script_args += [str(MIX_EVERY), str(self.large[1])]
        argv = wrk_argv(
            self.url,
            self.connections,
            seconds,
            SCRIPT,
            script_args=script_args,
            prefix=self.prefix,
            request_timeout_s=REQUEST_TIMEOUT_S,
        )
        tick = None if memory is None else memory.sample
        return _figures(run_summary(argv, seconds + WRK_GRACE_S, tick), self.rows_per_request)


def _process_state(server: ServerProcess) -> dict[str, Any]:
    return {
        "rss_mb": round(server.rss_mb(), 2),
        "threads": server.threads(),
        "open_files": server.open_files(),
        "cpu_s": round(server.cpu_seconds(), 2),
    }


def soak(server: ServerProcess, args: argparse.Namespace, load: Load) -> dict[str, Any]:
    """Warm up, then hold the load while sampling memory; every figure of the run.

    Raises `CannotRun` for anything that goes wrong before the measured period starts.
    """
    record: dict[str, Any] = {}
    try:
        record["ready_s"] = round(server.wait_ready(), 2)
        record["readyz"] = readyz_body(server.port)
        bodies = [load.small] if load.large is None else [load.small, load.large]
        record["check"] = check_answers(server, bodies)
        if not record["check"]["ok"]:
            raise CannotRun("pre-flight request: " + "; ".join(record["check"]["problems"]))
        logger.info("ready in %.2f s; warming up for %d s", record["ready_s"], args.warmup)
        record["warmup"] = load.run(args.warmup)
        record["drain_after_warmup_s"] = round(server.wait_idle(), 2)
        record["before"] = _process_state(server)
    except (ServerFailed, WrkFailed, OSError, ValueError, http.client.HTTPException) as exc:
        if server.proc.poll() is not None:
            raise CannotRun(f"the server exited with status {server.proc.returncode}") from exc
        raise CannotRun(str(exc)) from exc

    logger.info(
        "measuring for %d s or %s requests, %d connections",
        args.duration,
        f"{args.max_requests:,}",
        args.concurrency,
    )
    memory = Memory(server)
    memory.sample()
    try:
        record["measured"] = load.run(args.duration, memory)
    except WrkFailed as exc:
        raise CannotRun(str(exc)) from exc
    record["server_alive"] = server.proc.poll() is None
    if record["server_alive"]:
        # The end figure is taken idle, as the start one was, not with requests in flight.
        try:
            record["drain_after_load_s"] = round(server.wait_idle(), 2)
        except ServerFailed as exc:
            record["drain_after_load_s"] = None
            record["still_busy"] = str(exc)
        memory.sample()
        try:
            record["after"] = _process_state(server)
        except (OSError, ServerFailed):
            record["server_alive"] = False
    record["rss"] = memory.summary()
    record["readyz_after"] = _status(server.port, "/readyz")
    return record


def _status(port: int, path: str) -> int | None:
    """Status of GET `path`, or None if nothing answered."""
    try:
        return request(port, "GET", path, timeout=10.0)[0]
    except (OSError, ValueError, http.client.HTTPException):
        return None


def problems(record: dict[str, Any]) -> list[str]:
    """Why the soak failed; empty when it passed."""
    found = []
    measured = record["measured"]
    if measured["requests"] == 0:
        found.append("no request was answered")
    if measured["errors"]:
        found.append(f"{measured['errors']} errors under load")
    if record["warmup"]["errors"]:
        found.append(f"{record['warmup']['errors']} errors during warm-up")
    if not record["server_alive"]:
        found.append(f"the server exited (status {record['server'].get('exit_status')})")
    if record.get("still_busy"):
        found.append(record["still_busy"])
    growth = record["rss"]["growth_pct"]
    if growth is None:
        found.append("resident memory could not be read at the end")
    elif growth >= MAX_GROWTH_PCT:
        found.append(f"resident memory grew {growth:.1f} % (limit {MAX_GROWTH_PCT:.0f} %)")
    if record["readyz_after"] is None:
        found.append("/readyz did not answer after the run")
    elif record["readyz_after"] != 200:
        found.append(f"/readyz answered {record['readyz_after']} after the run, not 200")
    return found


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"


def table(record: dict[str, Any], args: argparse.Namespace, found: list[str]) -> str:
    """The figures a person reads, one per line."""
    m = record["measured"]
    rss = record["rss"]
    lat = m["latency_ms"]
    ended = "request budget reached" if m["requests"] >= args.max_requests else "window ended"
    before, after = record["before"], record.get("after") or {}
    rows = f"{args.rows} row{'s' if args.rows > 1 else ''} per request"
    if args.mix:
        rows += f", every {MIX_EVERY}th {MIX_ROWS} rows"

    def mb(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} MB"

    growth = "-" if rss["growth_pct"] is None else f"{rss['growth_pct']:+.2f} %"
    lines = [
        ("server", f"python -m app, runtime {record['readyz'].get('runtime', '?')}"),
        ("load", f"{args.concurrency} connections, {rows}"),
        ("bounds", f"{args.duration} s or {args.max_requests:,} requests"),
        ("requests", f"{m['requests']:,} in {m['seconds']:.1f} s ({ended})"),
        ("requests/s", f"{m['requests_per_s']:,.0f}"),
        (
            "errors",
            f"{m['errors']} (connect {m['connect_errors']}, read {m['read_errors']}, "
            f"write {m['write_errors']}, timeout {m['timeouts']}, non-2xx {m['non_2xx']})",
        ),
        (
            "latency",
            "  ".join(f"{k} {_ms(lat[k])}" for k in ("p50", "p90", "p99", "p99.9", "max")),
        ),
        ("RSS start", mb(rss["start_mb"])),
        ("RSS end", mb(rss["end_mb"])),
        ("RSS peak", mb(rss["peak_mb"])),
        ("RSS growth", f"{growth} (limit < {MAX_GROWTH_PCT:.0f} %)"),
        ("threads", f"{before['threads']} -> {after.get('threads', '-')}"),
        ("open files", f"{before['open_files']} -> {after.get('open_files', '-')}"),
        ("/readyz after", str(record["readyz_after"] or "no answer")),
        ("verdict", "PASS" if not found else "FAIL: " + "; ".join(found)),
    ]
    return "\n".join(f"{label:<14} {value}" for label, value in lines)


def _bundle(args: argparse.Namespace, work: Path) -> tuple[Path, str, dict[str, str], Path]:
    """(MODEL_DIR, MODEL_NAME, extra environment, version directory) of the bundle to serve."""
    if args.bundle is None:
        try:
            version_dir = train_bundle(work / "models", MODEL_NAME, args.epochs)
        except TrainingFailed as exc:
            raise CannotRun(f"cannot train the bundle: {exc}") from exc
        return version_dir.parent.parent, MODEL_NAME, {}, version_dir
    path = args.bundle.resolve()
    if (path / "preprocessing.json").is_file() and path.name.isdigit():
        return path.parent.parent, path.parent.name, {"MODEL_VERSION": path.name}, path
    versions = sorted((int(d.name), d) for d in path.glob("*") if d.name.isdigit() and d.is_dir())
    if not versions:
        raise CannotRun(f"--bundle {args.bundle}: neither a version directory nor holds one")
    return path.parent, path.name, {}, versions[-1][1]


def run(args: argparse.Namespace, work: Path, record: dict[str, Any]) -> int:
    """Set up, soak, report into `record`; the exit status (see the module docstring)."""
    model_root, model_name, env, version_dir = _bundle(args, work)
    record["bundle"] = {"path": str(version_dir), **describe(version_dir)}
    sizes = sorted({args.rows, MIX_ROWS} if args.mix else {args.rows})
    bodies = write_bodies(work, sizes)
    pinning = Pinning.choose(not args.no_pin)
    record["pinning"] = {"server_cpu": pinning.server_cpu, "client_cpu": pinning.client_cpu}
    if pinning.client_cpu is not None:
        os.sched_setaffinity(0, {pinning.client_cpu})  # keep sampling off the server's CPU
    spec = service_spec(
        model_root, model_name, args.runtime, log_level=args.log_level, env=env, name="soak"
    )
    record["server"] = {"command": {"args": spec.args, "env": spec.env}}
    with running(spec, work, pinning) as server:
        load = Load(
            url=f"http://{HOST}:{server.port}/predict",
            connections=args.concurrency,
            max_requests=args.max_requests,
            small=(args.rows, bodies[args.rows]),
            large=(MIX_ROWS, bodies[MIX_ROWS]) if args.mix else None,
            prefix=pinning.prefix(pinning.client_cpu),
        )
        try:
            record.update(soak(server, args, load))
        except CannotRun:
            record["server"]["log_tail"] = server.log_tail()
            raise
        finally:
            record["server"]["exit_status"] = server.proc.poll()
        record["server"]["log_tail"] = server.log_tail()
    found = problems(record)
    record["problems"] = found
    record["passed"] = not found
    print(table(record, args, found))
    return 1 if found else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; 0 passed, 1 failed, 2 could not run."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop_on_signals()
    args = parse_args(argv)
    started = datetime.now(UTC)
    clock = time.monotonic()
    record: dict[str, Any] = {
        "started_at": started.isoformat(),
        "arguments": arguments_record(args),
        "machine": describe_machine(REPO),
        "limits": {"max_rss_growth_pct": MAX_GROWTH_PCT, "request_timeout_s": REQUEST_TIMEOUT_S},
    }
    with tempfile.TemporaryDirectory(prefix="tabserve-soak-") as tmp:
        try:
            status = run(args, Path(tmp), record)
        except CannotRun as exc:
            logger.critical("could not run the soak: %s", exc)
            for line in record.get("server", {}).get("log_tail", [])[-8:]:
                logger.critical("  server | %s", line)
            record["error"] = str(exc)
            status = 2
    return finish_record(
        record, args.results, started=started, clock=clock, status=status, prefix="soak"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        logging.getLogger("benchmarks.soak").warning("interrupted; server stopped")
        sys.exit(130)
