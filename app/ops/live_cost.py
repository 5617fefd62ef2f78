"""What predictions cost in the service, live: CPU-seconds of the process per 1,000 rows
predicted over a recent window, from the process's own CPU counter and the rows counter.

HTTP, parsing, batching and the model call all count, as they do on the bill. No thread and
no timer: a sample (time, CPU, rows) is taken whenever the figure is read (a scrape, a page,
GET /model), and the figure covers the span from the newest sample at least a window old, so
it reports the span it really covers rather than assume one.

With several workers (WORKERS) each process keeps its own figures, and `pool` combines them:
the CPU-seconds and rows of every worker over their windows (each about the last
COST_WINDOW_SECONDS), added up before dividing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class LiveCostFigures(BaseModel):
    """What predictions cost in the service now, HTTP included (COST_WINDOW_SECONDS): in this
    process, or in every worker together with WORKERS above 1."""

    model_config = ConfigDict(frozen=True)

    window_seconds: float = Field(
        description="The span the figures cover, in seconds: about COST_WINDOW_SECONDS once "
        "the service has run that long and been read at least once a window; less when younger."
    )
    predictions: int = Field(description="Rows predicted in that span, all models.")
    cpu_seconds: float = Field(
        description="CPU-seconds of the process (of every worker, with WORKERS above 1) in "
        "that span."
    )
    cpu_seconds_per_1000_predictions: float | None = Field(
        description="null when no row was predicted in the span."
    )
    cost_per_cpu_hour: float | None = Field(description="COST_PER_CPU_HOUR, when set.")
    cost_per_million_predictions: float | None = Field(
        description="At COST_PER_CPU_HOUR; null when it is unset or nothing was predicted."
    )


@dataclass(frozen=True)
class _Sample:
    at: float
    cpu: float
    rows: int


class LiveCost:
    def __init__(
        self,
        window_seconds: float,
        cost_per_cpu_hour: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.window_seconds = window_seconds
        self.cost_per_cpu_hour = cost_per_cpu_hour
        self._clock, self._cpu = clock, cpu
        self._rows = 0
        self._lock = threading.Lock()
        self._samples: deque[_Sample] = deque([self._sample()])
        self.pool: Callable[[LiveCostFigures], LiveCostFigures] | None = None
        """Set when several workers serve: this process's figures in, every worker's out."""

    def add_rows(self, rows: int) -> None:
        with self._lock:
            self._rows += rows

    def figures(self) -> LiveCostFigures:
        """What predictions cost in the service now: this process's figures, or every
        worker's together when several serve."""
        own = self.own_figures()
        return own if self.pool is None else self.pool(own)

    def own_figures(self) -> LiveCostFigures:
        """This process's figures over about the last window."""
        with self._lock:
            now = self._sample()
            samples = self._samples
            # Keep one sample at least a window old (the start of the span) and the ones since.
            while len(samples) > 1 and samples[1].at <= now.at - self.window_seconds:
                samples.popleft()
            start = samples[0]
            # A sample per sixtieth of a window is plenty, however often the figure is read.
            if now.at - samples[-1].at >= self.window_seconds / 60:
                samples.append(now)
        rows, cpu = now.rows - start.rows, max(0.0, now.cpu - start.cpu)
        return _figures(now.at - start.at, rows, cpu, self.cost_per_cpu_hour)

    def _sample(self) -> _Sample:
        return _Sample(at=self._clock(), cpu=self._cpu(), rows=self._rows)


def pooled(figures: Sequence[LiveCostFigures], cost_per_cpu_hour: float | None) -> LiveCostFigures:
    """Several processes' figures as one: their CPU-seconds and rows added up, over the
    longest of their spans (they end within a second of each other and cover about the same
    window)."""
    return _figures(
        max((f.window_seconds for f in figures), default=0.0),
        sum(f.predictions for f in figures),
        sum(f.cpu_seconds for f in figures),
        cost_per_cpu_hour,
    )


def _figures(
    seconds: float, rows: int, cpu: float, cost_per_cpu_hour: float | None
) -> LiveCostFigures:
    per_1000 = cpu / rows * 1000 if rows else None
    price = None
    if per_1000 is not None and cost_per_cpu_hour is not None:
        price = per_1000 * 1000 / 3600 * cost_per_cpu_hour
    return LiveCostFigures(
        window_seconds=round(seconds, 3),
        predictions=rows,
        cpu_seconds=round(cpu, 6),
        cpu_seconds_per_1000_predictions=per_1000,
        cost_per_cpu_hour=cost_per_cpu_hour,
        cost_per_million_predictions=price,
    )
