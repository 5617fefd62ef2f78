"""The predictor: raw rows in, predictions in the target's units or labels out. No HTTP here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.bundle import (
    Decoded,
    Encoded,
    NumericFeature,
    PreprocessingStats,
    ServedMetadata,
)
from app.bundle.reference import ReferenceDistributions
from app.errors import InvalidInput, TooManyRows
from app.model.runtime import Runtime

Columns = Mapping[str, Sequence[object] | np.ndarray]
Rows = Sequence[Mapping[str, object]]


@dataclass(frozen=True)
class Predictor:
    """One loaded model version: its statistics, metadata, runtime and directory. Its name and
    version are the directories it was loaded from (`metadata.trained_as` keeps the rest)."""

    stats: PreprocessingStats
    metadata: ServedMetadata
    runtime: Runtime
    max_rows: int
    path: Path
    reference: ReferenceDistributions | None = None
    """The training data's distributions, for drift; None in bundles from before them."""

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> int:
        return self.metadata.version

    @property
    def features(self) -> list[str]:
        return self.stats.feature_names

    def predict_rows(self, rows: Rows) -> Decoded:
        """Rows holding every feature (None for missing) -> one prediction per row."""
        return self.decode(self.runtime(self.encode_rows(rows).x))

    def predict_columns(self, columns: Columns) -> Decoded:
        """Equal-length columns by feature name (None, NaN or inf for missing) -> predictions."""
        return self.decode(self.runtime(self.encode_columns(columns).x))

    def encode_columns(self, columns: Columns) -> Encoded:
        """As `encode_rows`, for equal-length columns by feature name."""
        self.check_row_count(len(next(iter(columns.values()), ())))
        encoded = self.stats.encode_columns(columns)
        self._in_range(encoded.x)
        return encoded

    def encode_rows(self, rows: Rows) -> Encoded:
        """Rows -> the network's float32 inputs, through the bundle's own transform, and
        which cells were missing."""
        self.check_row_count(len(rows))
        encoded = self.stats.encode_rows(rows)
        self._in_range(encoded.x)
        return encoded

    def _in_range(self, x: np.ndarray) -> np.ndarray:
        """`x`, unless a value was so far from the training data that, standardised, it left
        float32's range: the model would answer NaN, so the client hears which value it was."""
        if np.isfinite(x).all():
            return x
        row, column = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
        # Only the numeric block (first in the encoding, in feature order) can overflow.
        name = [f.name for f in self.stats.features if isinstance(f, NumericFeature)][column]
        raise InvalidInput(
            f"instances[{row}].{name}: too far from the training data for the model "
            "(beyond float32 once standardised)",
            [{"loc": f"instances[{row}].{name}", "message": "too far from the training data"}],
        )

    def decode(self, outputs: np.ndarray) -> Decoded:
        return self.stats.decode(outputs)

    def check_row_count(self, n: int) -> None:
        if n > self.max_rows:
            raise TooManyRows(
                f"{n} rows sent; at most {self.max_rows} are accepted per request (MAX_ROWS)"
            )
        if n == 0:
            raise InvalidInput("instances: at least one row is required")
