"""Plain numpy preprocessing for the TensorFlow reference servers, from `preprocessing.json`.

This is what users write when they skip a framework: fill missing values with the training
mean, standardise, and scale the output back into the target's units.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from benchmarks.servers.schema import Row

VERSION_DIR = Path(os.environ.get("BENCH_VERSION_DIR", "models/default/1"))
"""The bundle version directory served, set by the benchmark."""


class Standardiser:
    """Rows -> standardised float32 matrix; network output -> the target's units."""

    def __init__(self, version_dir: Path) -> None:
        stats = json.loads((version_dir / "preprocessing.json").read_text(encoding="utf-8"))
        features = stats["features"]
        self.names = [f["name"] for f in features]
        self.fill = np.array([f["fill_value"] for f in features], dtype=np.float64)
        self.mean = np.array([f["mean"] for f in features], dtype=np.float64)
        self.std = np.array([f["std"] for f in features], dtype=np.float64)
        self.target_mean = float(stats["target"].get("mean", 0.0))
        self.target_std = float(stats["target"].get("std", 1.0))

    def inputs(self, rows: list[Row]) -> np.ndarray:
        """Missing values (None) become the training mean, then each column is standardised."""
        x = np.array([[getattr(row, name) for name in self.names] for row in rows], dtype=float)
        x = np.where(np.isnan(x), self.fill, x)
        return ((x - self.mean) / self.std).astype(np.float32)

    def outputs(self, y: np.ndarray) -> list[float]:
        """The network's (n, 1) output in the target's units."""
        values: list[float] = (y.reshape(-1) * self.target_std + self.target_mean).tolist()
        return values
