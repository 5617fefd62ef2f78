"""Whether one data file fits in memory: its in-memory cost against a budget, so that a file too
large to load is streamed without being asked."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from pathlib import Path

from training.config import TrainConfig
from training.data import BUILTIN_SOURCES, DEFAULT_SOURCE
from training.errors import TrainingError
from training.sources import PARQUET_SUFFIXES

logger = logging.getLogger(__name__)

CSV_MEMORY_PER_BYTE = 15
"""Memory the in-memory path takes per byte of CSV, measured: a 133 MB file peaked at 2.08 GB
and a 100 MB one at 2.27 GB (every cell read as text, then cleaned)."""
PARQUET_MEMORY_PER_CELL = 64
"""Bytes per cell of a Parquet file loaded through pandas: a text cell is a Python string."""
BUDGET_SHARE = 0.5
"""The default budget: this share of the memory available when the run starts."""

_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """ "4G", "512MB", "1.5GiB" or a number of bytes -> bytes; ValueError otherwise."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (say 512M, 4G or a number of bytes)")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def available_memory() -> int:
    """Bytes the kernel says a new allocation can take now (MemAvailable), or all of RAM."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget() -> int:
    return int(available_memory() * BUDGET_SHARE)


def in_memory_cost(path: Path) -> int:
    """Estimated peak bytes of loading `path` whole, from its size (CSV) or shape (Parquet)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        return int(meta.num_rows) * int(meta.num_columns) * PARQUET_MEMORY_PER_CELL
    return path.stat().st_size * CSV_MEMORY_PER_BYTE


def gigabytes(n: int) -> str:
    return f"{n / (1 << 30):.2f} GB"


def with_data_path(config: TrainConfig) -> TrainConfig:
    """`config`, streaming one file whose in-memory cost would pass the memory budget; the log
    says which path was taken and why."""
    source = str(config.data or DEFAULT_SOURCE)
    if config.streamed or source in BUILTIN_SOURCES or not Path(source).is_file():
        return config
    cost = in_memory_cost(Path(source))
    budget = config.memory_budget if config.memory_budget is not None else default_budget()
    fits = cost <= budget
    logger.info(
        "%s: loading it whole would take about %s, %s the memory budget of %s (--memory-budget)"
        "; %s",
        source,
        gigabytes(cost),
        "within" if fits else "over",
        gigabytes(budget),
        "reading it in memory" if fits else "streaming it instead",
    )
    if fits:
        return config
    if config.cv_folds:
        raise TrainingError(
            f"--cv needs the data in memory, and {source} is over the memory budget "
            "(raise --memory-budget, or drop --cv)"
        )
    return replace(config, stream=True)
