"""What a training run costs, measured as it runs: wall and CPU seconds per phase, CPU seconds
of the process (every thread), its peak resident memory, and the machine it ran on."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.bundle.metadata import Machine, PhaseCost, TrainingCost


def cpu_seconds() -> float:
    """User and system time of every thread of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def price_of(cpu_seconds: float, cost_per_cpu_hour: float | None) -> float | None:
    return None if cost_per_cpu_hour is None else cpu_seconds / 3600 * cost_per_cpu_hour


def this_machine() -> Machine:
    return Machine(cpu_model=_cpu_model(), cores=len(os.sched_getaffinity(0)))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _process_age() -> float | None:
    """Seconds since this process started, from the kernel's own record; None off Linux."""
    try:
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        fields = Path("/proc/self/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


class RunCost:
    """Started with the run; `phase` times each step, `record` and `training` give the figures."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = cpu_seconds()
        self.phases: dict[str, PhaseCost] = {}

    @classmethod
    def since_process_start(cls) -> RunCost:
        """For a run that is the whole process (`python -m training`): what the interpreter and
        the imports took before the run began is its `startup` phase, and counts, as the
        operating system counts it."""
        cost = cls()
        age = _process_age()
        if age is not None:
            cost._wall -= age
            cost._cpu = 0.0
            cost.phases["startup"] = PhaseCost(
                wall_seconds=round(age, 3), cpu_seconds=round(cpu_seconds(), 3)
            )
        return cost

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            before = self.phases.get(name, PhaseCost(wall_seconds=0.0, cpu_seconds=0.0))
            self.phases[name] = PhaseCost(
                wall_seconds=round(before.wall_seconds + time.perf_counter() - wall, 3),
                cpu_seconds=round(before.cpu_seconds + cpu_seconds() - cpu, 3),
            )

    def training(
        self, rows_per_second: list[float], cost_per_cpu_hour: float | None
    ) -> TrainingCost:
        """The run so far: its phases, wall and CPU seconds, peak memory and epoch speed."""
        # ru_maxrss is in KiB on Linux: the process's peak, TensorFlow's own memory included.
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        spent = round(cpu_seconds() - self._cpu, 3)
        return TrainingCost(
            wall_seconds=round(time.perf_counter() - self._wall, 3),
            cpu_seconds=spent,
            peak_rss_mb=round(peak_kib / 1024, 1),
            train_rows_per_second=round(statistics.median(rows_per_second), 1)
            if rows_per_second
            else None,
            phases=dict(self.phases),
            machine=this_machine(),
            price=price_of(spent, cost_per_cpu_hour),
        )

    @staticmethod
    def record(training: TrainingCost, rows_per_second: list[float]) -> dict[str, float]:
        """The same figures flat, as the metadata's `training` object has kept them since
        before `cost` existed: `seconds_<phase>`, `wall_seconds`, `cpu_seconds`,
        `peak_rss_mb`, and the median and first epochs' training rows/s (the first pays for
        tracing the model)."""
        figures = {f"seconds_{name}": p.wall_seconds for name, p in training.phases.items()}
        figures |= {
            "wall_seconds": training.wall_seconds,
            "cpu_seconds": training.cpu_seconds,
            "peak_rss_mb": training.peak_rss_mb,
        }
        if training.train_rows_per_second is not None:
            figures["train_rows_per_second"] = training.train_rows_per_second
            figures["first_epoch_rows_per_second"] = round(rows_per_second[0], 1)
        return figures
