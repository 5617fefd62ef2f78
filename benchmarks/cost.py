"""What one load run cost the server, in CPU-seconds per 1,000 rows, measured two ways.

- **os**: user plus system CPU of the server process (`/proc/<pid>/stat`, every thread) from
  right before wrk starts to right after it ends, over the rows of the requests wrk got
  answered. Any server.
- **self**: what our service says on `GET /metrics` (`tabserve_cpu_seconds_per_1000_predictions`,
  from its own CPU clock and rows counter), read right after the run. Services only.

The service's figure covers the span from its newest internal sample at least
COST_WINDOW_SECONDS old to the read, and it samples whenever /metrics is read. So the
benchmark reads /metrics right before each run (the run's start is then a sample) and starts
the service with a window shorter than a run (`cost_window_seconds`): nothing reads it during
the run, so at the read right after, that sample is the newest one a window old, and the
figure spans exactly the run. A window longer than the run would reach back to an earlier
sample, across the idle drain and the tail of the run before.
"""

from __future__ import annotations

import http.client
import logging
import math
import time
from dataclasses import asdict, dataclass

from benchmarks.process import ServerProcess, request
from benchmarks.wrk import Measurement

logger = logging.getLogger(__name__)

WINDOW_FRACTION = 0.8
"""COST_WINDOW_SECONDS as a fraction of a run: shorter than any run by a margin, since wrk's
window starts after the read before it."""
SAMPLE_EVERY = 1 / 60
"""The service keeps a new sample only this fraction of a window after its last one
(app/ops/live_cost.py); the read before a run must come later than that."""
SPAN_SLACK_S = 0.002
"""The service rounds the span it reports to milliseconds."""

PER_1000 = "tabserve_cpu_seconds_per_1000_predictions"
WINDOW = "tabserve_cost_window_seconds"
PREDICTIONS = "tabserve_cost_window_predictions"


def cost_window_seconds(run_seconds: int) -> float:
    """COST_WINDOW_SECONDS for a service measured in wrk runs of `run_seconds` (or longer)."""
    return round(run_seconds * WINDOW_FRACTION, 3)


@dataclass(frozen=True)
class RunCost:
    """CPU-seconds per 1,000 rows over one wrk run, as the OS and (services) as it says."""

    rows: int
    """Rows in the requests wrk got answered (every answer, as wrk counts them)."""
    cpu_seconds: float
    """CPU the server process used from right before wrk started to right after it ended."""
    os_per_1000: float | None
    self_per_1000: float | None
    """None for a server that does not report it, or when /metrics could not be read."""
    self_window_s: float | None
    """The span the service says its figure covers."""
    self_rows: int | None
    """Rows the service says it predicted in that span."""
    span_s: float | None
    """From the start of the /metrics read before the run to the end of the one after: the
    longest span the service's figure can cover if it starts at the run."""
    self_error: str | None = None

    @property
    def covers_run(self) -> bool | None:
        """Whether the service's figure starts at the read before the run (not earlier)."""
        if self.self_window_s is None or self.span_s is None:
            return None
        return self.self_window_s <= self.span_s + SPAN_SLACK_S

    @property
    def self_over_os(self) -> float | None:
        """How the service's own figure compares with the OS's (1: the same)."""
        if self.self_per_1000 is None or not self.os_per_1000:
            return None
        return self.self_per_1000 / self.os_per_1000

    def to_json(self) -> dict[str, object]:
        """The figures, with the ratio and whether the service's span was the run."""
        return {**asdict(self), "self_over_os": self.self_over_os, "covers_run": self.covers_run}


@dataclass(frozen=True)
class _Before:
    cpu_seconds: float
    read_at: float | None
    """When the /metrics read before the run started (None: not read)."""
    error: str | None


class CostMeter:
    """Reads a server's CPU (and a service's /metrics) around each wrk run."""

    def __init__(self, server: ServerProcess, window_s: float | None) -> None:
        self.server = server
        self.window_s = window_s
        """The service's COST_WINDOW_SECONDS; None for a server without live cost figures."""
        self._last_read_end: float | None = None

    def before(self) -> _Before:
        """Sample the service (the run's start) and the process's CPU, in that order."""
        if self.window_s is None:
            return _Before(self.server.cpu_seconds(), None, None)
        if self._last_read_end is not None:
            # Read sooner than this after the last read, the service would keep no new sample,
            # and the figure would start at the last read, before the drain.
            wait = self.window_s * SAMPLE_EVERY + 0.01 - (time.monotonic() - self._last_read_end)
            time.sleep(max(0.0, wait))
        read_at = time.monotonic()
        _, error = self._read()
        return _Before(self.server.cpu_seconds(), read_at, error)

    def after(self, before: _Before, run: Measurement) -> RunCost:
        """The process's CPU, then the service's figure; both over the run."""
        cpu = max(0.0, self.server.cpu_seconds() - before.cpu_seconds)
        rows = run.requests * run.rows_per_request
        figures: dict[str, float] = {}
        error = before.error
        span = None
        if before.read_at is not None:
            figures, error_after = self._read()
            error = error or error_after
            span = round(time.monotonic() - before.read_at, 3)
        predictions = figures.get(PREDICTIONS)
        return RunCost(
            rows=rows,
            cpu_seconds=round(cpu, 3),
            os_per_1000=cpu / rows * 1000 if rows else None,
            self_per_1000=figures.get(PER_1000),
            self_window_s=figures.get(WINDOW),
            self_rows=None if predictions is None else int(predictions),
            span_s=span,
            self_error=error,
        )

    def _read(self) -> tuple[dict[str, float], str | None]:
        """The live cost gauges from /metrics, or why they could not be read."""
        try:
            status, body = request(self.server.port, "GET", "/metrics")
        except (OSError, http.client.HTTPException) as exc:
            return self._failed(f"GET /metrics: {exc}")
        finally:
            self._last_read_end = time.monotonic()
        if status != 200:
            return self._failed(f"GET /metrics answered {status}")
        return live_cost_gauges(body.decode("utf-8", errors="replace")), None

    def _failed(self, error: str) -> tuple[dict[str, float], str]:
        logger.warning("%s: %s", self.server.spec.name, error)
        return {}, error


def live_cost_gauges(exposition: str) -> dict[str, float]:
    """The service's live cost gauges (unlabelled: `name value`) in a Prometheus exposition."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name in (PER_1000, WINDOW, PREDICTIONS):
            number = float(value.split()[0])
            if math.isfinite(number):
                found[name] = number
    return found
