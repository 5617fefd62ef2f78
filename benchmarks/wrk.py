"""Drive a server with wrk (one thread, N connections) and parse the script's summary line."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("post.lua")
MIN_REQUEST_TIMEOUT_S = 10
"""wrk counts a request unanswered after this long, or after the whole window if that is
longer, as a timeout (a socket error): a slow answer is an answer, and shows in p99."""
MARKER = "BENCH_RESULT "


class WrkFailed(RuntimeError):
    """wrk did not run or printed no summary."""


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


def run_wrk(url: str, load: Load, prefix: list[str]) -> Measurement:
    """Run wrk against `url` (`prefix` pins it to a CPU) and return its figures."""
    argv = [
        *prefix,
        "wrk",
        "-t1",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        f"--timeout={max(MIN_REQUEST_TIMEOUT_S, load.seconds)}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(load.body),
    ]
    try:
        out = subprocess.run(  # noqa: S603 (our own fixed command line)
            argv, capture_output=True, text=True, check=False, timeout=load.seconds + 60
        )
    except subprocess.TimeoutExpired:
        raise WrkFailed(f"wrk did not finish within {load.seconds + 60} s") from None
    for line in out.stdout.splitlines():
        if line.startswith(MARKER):
            return _measurement(json.loads(line[len(MARKER) :]), load)
    raise WrkFailed(f"wrk exited {out.returncode} without a summary: {out.stderr.strip()[-300:]}")


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
