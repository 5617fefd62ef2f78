"""Running tallies of streamed columns, merged chunk by chunk: moments, distinct values and
category counts, a target's kind and classes, and a uniform sample of rows. Memory is bounded
by columns, categories and classes, not by rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app.bundle import ColumnSummary, category_key
from training.column_rules import identifier_like, useless_reason
from training.columns import as_numbers, as_text, first_non_number, is_integral

DISTINCT_LIMIT = 10_000
"""Distinct values counted per column; beyond it the summary says "at least"."""
MAX_CLASSES = 10_000


@dataclass
class Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: np.ndarray) -> None:
        n = len(x)
        if not n:
            return
        mean = float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total


@dataclass
class ColumnTally:
    """One feature column: its numbers while every cell is one, else its category keys."""

    numeric: bool
    """Still numeric: every present cell so far was a number."""
    flipped: bool = False
    """A cell that is not a number came after numbers: the text tally is incomplete."""
    text_missing: int = 0
    text_values: set[str] = field(default_factory=set)
    text_first: str | None = None
    number_rows: int = 0
    number_missing: int = 0
    number_values: set[float] = field(default_factory=set)
    """Finite ones; `infinities` holds the others, which count as distinct but not present."""
    infinities: set[float] = field(default_factory=set)
    number_first: float | None = None
    number_integral: bool = True
    text_rows: int = 0

    def add(self, column: pd.Series) -> None:
        if self.numeric:
            numbers = as_numbers(column)
            if numbers is not None:
                self.number_rows += len(numbers)
                finite = numbers[np.isfinite(numbers)]
                self.number_integral = self.number_integral and is_integral(finite)
                self.number_missing += len(numbers) - len(finite)
                if self.number_first is None and len(finite):
                    self.number_first = float(finite.iloc[0])
                self.infinities.update(numbers[np.isinf(numbers)].unique().tolist())
                add_capped(self.number_values, finite.unique())
                return
            # Only a flip after numeric rows leaves the text tally short.
            self.numeric, self.flipped = False, self.number_rows > 0
            self.number_values.clear()
        if self.flipped:
            return
        text = as_text(column)
        present_text = text.dropna()
        self.text_rows += len(text)
        self.text_missing += len(text) - len(present_text)
        if self.text_first is None and len(present_text):
            self.text_first = str(present_text.iloc[0])
        add_capped(self.text_values, present_text.unique())

    def identifier_like(self, summary: ColumnSummary) -> bool:
        rows = self.number_rows if self.numeric else self.text_rows
        return identifier_like(summary, rows, self.numeric and self.number_integral)

    def summary(self) -> tuple[ColumnSummary, str | None]:
        """The column's summary, and why it is useless if it is."""
        first: object
        if self.numeric:
            kind, missing, first = "numeric", self.number_missing, self.number_first
            present, infinite = len(self.number_values), len(self.infinities)
        else:
            kind, missing, first = "categorical", self.text_missing, self.text_first
            present, infinite = len(self.text_values), 0
        capped = present >= DISTINCT_LIMIT
        summary = ColumnSummary(
            kind=kind,
            missing=missing,
            distinct=min(present, DISTINCT_LIMIT) + infinite,
            distinct_capped=capped,
        )
        return summary, None if capped else useless_reason(present, first)


@dataclass
class TargetTally:
    numeric: bool = True
    """Every present cell so far was a number."""
    flipped: bool = False
    """Text came after numbers: the label tally is incomplete, the pass must run again."""
    boolean: bool = True
    """Every chunk held the target as booleans (Parquet)."""
    integral: bool = True
    finite_values: set[float] = field(default_factory=set)
    finite_count: int = 0
    text_labels: set[str] = field(default_factory=set)
    text_missing: int = 0
    non_finite_numbers: int = 0
    """Rows whose target reads as an infinite number; missing, were the target numeric."""
    first_text: tuple[str, int, object] | None = None
    """(shard, row, cell) of the first cell that is not a number."""

    def add(self, column: pd.Series, shard: str, start: int) -> np.ndarray:
        """Tally the target cells; return which rows may have a target (neither blank nor an
        infinite number), the rows the first pass tallies features over."""
        self.boolean &= pd.api.types.is_bool_dtype(column)
        if self.numeric:
            numbers = as_numbers(column)
            if numbers is not None:
                finite = np.isfinite(numbers)
                # Only the cells that are not finite numbers need their text: "inf" or blank?
                self.non_finite_numbers += int(as_text(column[~finite]).notna().sum())
                present = numbers[finite]
                self.finite_count += len(present)
                self.integral &= is_integral(present)
                add_capped(self.finite_values, present.unique(), MAX_CLASSES + 1)
                present_rows: np.ndarray = finite.to_numpy()
                return present_rows
        labels = labels_text(column)
        if self.numeric:
            self.numeric, self.flipped = False, self.finite_count + self.non_finite_numbers > 0
            if not self.boolean:
                row = first_non_number(column) or 0
                self.first_text = (shard, start + row + 1, column.iloc[row])
        self.text_missing += int(labels.isna().sum())
        add_capped(self.text_labels, labels.dropna().unique(), MAX_CLASSES + 1)
        present_labels: np.ndarray = labels.notna().to_numpy()
        return present_labels


class Reservoir:
    """A uniform sample of at most `size` rows from a stream of frames (Vitter's algorithm R)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seen = 0
        self.rng = np.random.default_rng(seed)
        self.columns: dict[str, np.ndarray] = {}

    def add(self, frame: pd.DataFrame) -> None:
        n = len(frame)
        if not n:
            return
        if not self.columns:
            self.columns = {
                str(name): np.empty(self.size, np.float64 if col.dtype == np.float64 else object)
                for name, col in frame.items()
            }
        position = np.arange(self.seen, self.seen + n)
        self.seen += n
        # Row i of the stream takes slot i while there is room, then a random slot below i
        # if that slot is below `size`; a later row taking the same slot wins.
        slot = np.where(position < self.size, position, self.rng.integers(0, position + 1))
        rows = np.flatnonzero(slot < self.size)
        last = len(rows) - 1 - np.unique(slot[rows][::-1], return_index=True)[1]
        rows = rows[last]
        for name, values in self.columns.items():
            values[slot[rows]] = frame[name].to_numpy()[rows]

    def frame(self) -> pd.DataFrame:
        kept = min(self.seen, self.size)
        return pd.DataFrame({name: values[:kept] for name, values in self.columns.items()})


def labels_text(column: pd.Series) -> pd.Series:
    """Class labels as text, stripped (not canonical: "Yes" stays "Yes"), None where missing."""
    if not pd.api.types.is_string_dtype(column) or column.dtype == object:
        return column.map(_label_text)
    labels = column.str.strip().astype(object)
    labels[as_text(column).isna()] = None
    return labels


def _label_text(value: object) -> str | None:
    if category_key(value) is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value).strip()


def add_capped(values: set[Any], new: Iterable[Any], limit: int = DISTINCT_LIMIT) -> None:
    """Add `new` (one chunk's distinct values) until the set holds `limit` or more."""
    if len(values) < limit:
        values.update(new)
