"""What a prediction costs, measured at training time through the bundle's own runtimes (the
classes the service calls), in this process, on encoded test rows: the model call alone, no
HTTP, no parsing. The service measures the rest live (`app.ops.live_cost`)."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import numpy as np

from app.bundle import SAVED_MODEL_DIR, Flatbuffer, RuntimeCost
from app.model.runtime import LiteRTRuntime, Runtime, SavedModelRuntime
from training.cost import cpu_seconds, price_of

logger = logging.getLogger(__name__)

LARGE_CALL_ROWS = 1_000
SECONDS_PER_MEASURE = 0.15
"""Each (runtime, rows) pair is called for about this long, after a warm-up."""
MIN_CALLS = 20


def runtimes_of(version_dir: Path, *flatbuffers: Flatbuffer | None) -> dict[str, Runtime]:
    """Every runtime the bundle can be served with: its flatbuffers (LiteRT, then quantised)
    and the SavedModel."""
    found: dict[str, Runtime] = {}
    for name, flatbuffer in zip(("litert", "litert-quantized"), flatbuffers, strict=False):
        if flatbuffer is not None:
            found[name] = LiteRTRuntime(version_dir / flatbuffer.file, name)
    found["savedmodel"] = SavedModelRuntime(version_dir / SAVED_MODEL_DIR)
    return found


def measure(
    runtimes: dict[str, Runtime], x: np.ndarray, cost_per_cpu_hour: float | None
) -> dict[str, RuntimeCost]:
    """Microseconds per call of 1 and of 1,000 rows, and rows per CPU-second in the latter."""
    if not len(x):  # no test rows to time with: any row costs the same
        x = np.zeros((1, x.shape[1]), np.float32)
    one = x[:1]
    large = np.resize(x, (LARGE_CALL_ROWS, x.shape[1])).astype(np.float32)  # repeats rows if few
    costs = {}
    for name, runtime in runtimes.items():
        single, _ = _calls(runtime, one)
        many, cpu_per_call = _calls(runtime, large)
        per_cpu_second = LARGE_CALL_ROWS / max(cpu_per_call, 1e-9)
        price = price_of(1e6 / per_cpu_second, cost_per_cpu_hour)
        costs[name] = RuntimeCost(
            microseconds_per_call_1_row=round(single * 1e6, 2),
            microseconds_per_call_1000_rows=round(many * 1e6, 2),
            predictions_per_cpu_second=round(per_cpu_second, 1),
            price_per_million=price,
        )
        logger.info(
            "serving cost of %s: %.0f us per 1-row call, %.0f us per 1,000-row call, "
            "%.0f predictions per CPU-second",
            name,
            single * 1e6,
            many * 1e6,
            per_cpu_second,
        )
    return costs


def _calls(runtime: Runtime, x: np.ndarray) -> tuple[float, float]:
    """(median wall seconds per call, CPU seconds of the process per call) over about
    `SECONDS_PER_MEASURE` of calls, after three to warm up."""
    for _ in range(3):
        runtime(x)
    walls: list[float] = []
    started_cpu, started = cpu_seconds(), time.perf_counter()
    while len(walls) < MIN_CALLS or time.perf_counter() - started < SECONDS_PER_MEASURE:
        before = time.perf_counter()
        runtime(x)
        walls.append(time.perf_counter() - before)
    return statistics.median(walls), (cpu_seconds() - started_cpu) / len(walls)
