"""What a training run costs, measured as it runs: wall seconds per phase, CPU seconds of the
process (every thread), and its peak resident memory."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RunCost:
    """Started with the run; `phase` times each step, `record` gives the figures."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()
        self.phases: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def record(self, rows_per_second: list[float]) -> dict[str, float]:
        """The run so far, as the metadata keeps it: `seconds_<phase>`, `wall_seconds`,
        `cpu_seconds`, `peak_rss_mb`, and the median and first epochs' training rows/s (the
        first pays for tracing the model)."""
        # ru_maxrss is in KiB on Linux: the process's peak, TensorFlow's own memory included.
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures = {f"seconds_{name}": round(s, 3) for name, s in self.phases.items()}
        figures |= {
            "wall_seconds": round(time.perf_counter() - self._wall, 3),
            "cpu_seconds": round(_cpu_seconds() - self._cpu, 3),
            "peak_rss_mb": round(peak_kib / 1024, 1),
        }
        if rows_per_second:
            figures["train_rows_per_second"] = round(statistics.median(rows_per_second), 1)
            figures["first_epoch_rows_per_second"] = round(rows_per_second[0], 1)
        return figures
