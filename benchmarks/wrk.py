"""Drive a server with wrk (one thread, N connections) and parse the script's summary line."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("post.lua")
MIN_REQUEST_TIMEOUT_S = 10
"""wrk counts a request unanswered after this long, or after the whole window if that is
longer, as a timeout (a socket error): a slow answer is an answer, and shows in p99."""
MARKER = "BENCH_RESULT "
STOP_MARKER = "BENCH_STOP"
"""A line a wrk script prints (and flushes) when it has stopped before its window ends."""


class WrkFailed(RuntimeError):
    """wrk (or the gRPC load generator) did not run or printed no summary."""


@dataclass(frozen=True)
class Load:
    """One wrk run: POST `body` (holding `rows` rows) over `connections` for `seconds`."""

    connections: int
    seconds: int
    body: Path
    rows: int


@dataclass(frozen=True)
class Measurement:
    """What one wrk run measured; latencies in milliseconds."""

    connections: int
    rows_per_request: int
    seconds: float
    requests: int
    requests_per_s: float
    rows_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    non_2xx: int
    """Responses wrk counts as errors (status 400 and above; nothing here redirects)."""
    socket_errors: int
    """Connect, read and write errors and timeouts."""

    @property
    def valid(self) -> bool:
        """At least one request, every answer a success, no socket error."""
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    def to_json(self) -> dict[str, Any]:
        """The figures, with `valid`."""
        return {**asdict(self), "valid": self.valid}


def wrk_version() -> str:
    """First line of `wrk --version` (it exits 1 after printing its usage)."""
    exe = shutil.which("wrk")
    if exe is None:
        return "not installed"
    out = subprocess.run(  # noqa: S603 (fixed command line)
        [exe, "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    return (out.stdout or out.stderr).splitlines()[0].strip()


def wrk_argv(
    url: str,
    connections: int,
    seconds: int,
    script: Path,
    *,
    script_args: list[str],
    prefix: list[str],
    request_timeout_s: int | None = None,
) -> list[str]:
    """`wrk -t1 -cN -dSs` with `script` and its arguments; `prefix` pins it to a CPU.

    `request_timeout_s` defaults to `MIN_REQUEST_TIMEOUT_S` or the window, if longer.
    """
    timeout = request_timeout_s or max(MIN_REQUEST_TIMEOUT_S, seconds)
    return [
        *prefix,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]


def run_summary(
    argv: list[str],
    timeout_s: float,
    tick: Callable[[], None] | None = None,
    tick_s: float = 1.0,
    what: str = "wrk",
) -> dict[str, Any]:
    """Run wrk (or another load generator, `what`, that prints the same way) and return the
    JSON its script printed after `MARKER`.

    `tick` is called every `tick_s` seconds while wrk runs (to sample the server meanwhile).
    A script that prints `STOP_MARKER` (flushed) ends the run early: wrk's main thread sleeps
    out the whole `-d` window even when its threads have stopped, but SIGINT wakes it and it
    still prints the summary. wrk is killed if it outlives `timeout_s` or we are interrupted.
    """
    proc = subprocess.Popen(  # noqa: S603 (our own fixed command line)
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=_read_output, args=(proc, lines), daemon=True),
        threading.Thread(target=errors.extend, args=(proc.stderr or (),), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        started = time.monotonic()
        next_tick = started + tick_s
        while True:
            wait = timeout_s - (time.monotonic() - started)
            if tick is not None:
                wait = min(wait, next_tick - time.monotonic())
            try:
                proc.wait(timeout=max(0.0, wait))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started >= timeout_s:
                    raise WrkFailed(f"{what} did not finish within {timeout_s:.0f} s") from None
                if tick is not None and time.monotonic() >= next_tick:
                    tick()
                    next_tick += tick_s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=10)
    for line in lines:
        if line.startswith(MARKER):
            raw: dict[str, Any] = json.loads(line[len(MARKER) :])
            return raw
    tail = "".join(errors).strip()[-300:]
    raise WrkFailed(f"{what} exited {proc.returncode} without a summary: {tail}")


def _read_output(proc: subprocess.Popen[str], lines: list[str]) -> None:
    """Collect wrk's output; on `STOP_MARKER`, SIGINT it until it exits.

    wrk ignores SIGINT until all its threads have started, hence the repeats.
    """
    for line in proc.stdout or ():
        lines.append(line)
        if line.strip() == STOP_MARKER:
            while proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)


def run_wrk(url: str, load: Load, prefix: list[str]) -> Measurement:
    """Run wrk against `url` (`prefix` pins it to a CPU) and return its figures."""
    argv = wrk_argv(
        url, load.connections, load.seconds, SCRIPT, script_args=[str(load.body)], prefix=prefix
    )
    return _measurement(run_summary(argv, load.seconds + 60), load)


def _measurement(raw: dict[str, Any], load: Load) -> Measurement:
    seconds = raw["duration_us"] / 1e6
    rate = raw["requests"] / seconds if seconds > 0 else 0.0
    return Measurement(
        connections=load.connections,
        rows_per_request=load.rows,
        seconds=round(seconds, 3),
        requests=raw["requests"],
        requests_per_s=rate,
        rows_per_s=rate * load.rows,
        latency_p50_ms=raw["latency_p50_us"] / 1000,
        latency_p90_ms=raw["latency_p90_us"] / 1000,
        latency_p99_ms=raw["latency_p99_us"] / 1000,
        latency_max_ms=raw["latency_max_us"] / 1000,
        latency_mean_ms=raw["latency_mean_us"] / 1000,
        non_2xx=raw["non_2xx"],
        socket_errors=sum(
            raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
    )
