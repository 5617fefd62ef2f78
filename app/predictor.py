"""The predictor: named rows in, predictions in the target's units out. Knows nothing of HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.bundle import Metadata, PreprocessingStats
from app.errors import InvalidInput, TooManyRows
from app.runtime import Runtime

_MAX_REPORTED_ROWS = 10


@dataclass(frozen=True)
class Predictor:
    """One loaded model version: its statistics, metadata and runtime."""

    stats: PreprocessingStats
    metadata: Metadata
    runtime: Runtime
    max_rows: int

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> int:
        return self.metadata.version

    @property
    def features(self) -> list[str]:
        return self.stats.features

    def predict_rows(self, rows: Sequence[Mapping[str, float | None]]) -> np.ndarray:
        """Rows as {feature: value or None} -> predictions (n,) in the target's units."""
        self._check_row_count(len(rows))
        self._check_feature_names(rows)
        features = self.features
        x = np.array(
            [[np.nan if (v := row[f]) is None else v for f in features] for row in rows],
            dtype=np.float64,
        )
        return self._run(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw rows (n, f) in feature order, NaN or inf meaning missing -> predictions (n,)."""
        self._check_row_count(len(x))
        return self._run(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.stats.unscale_target(self.runtime(self.stats.transform(x)))

    def _check_row_count(self, n: int) -> None:
        if n > self.max_rows:
            raise TooManyRows(f"{n} rows sent; at most {self.max_rows} are accepted per request")
        if n == 0:
            raise InvalidInput("instances: at least one row is required")

    def _check_feature_names(self, rows: Sequence[Mapping[str, float | None]]) -> None:
        expected = set(self.features)
        details = []
        for i, row in enumerate(rows):
            if row.keys() == expected:
                continue
            problems = []
            if missing := [f for f in self.features if f not in row]:
                problems.append(f"missing features: {', '.join(missing)}")
            if unknown := sorted(set(row) - expected):
                problems.append(f"unknown features: {', '.join(unknown)}")
            details.append({"loc": f"instances[{i}]", "message": "; ".join(problems)})
            if len(details) == _MAX_REPORTED_ROWS:
                break
        if details:
            first = details[0]
            more = f" (and {len(details) - 1} more rows)" if len(details) > 1 else ""
            raise InvalidInput(f"{first['loc']}: {first['message']}{more}", details)
