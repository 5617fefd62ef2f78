"""Which columns become features: the names asked for must exist, a row index or a column
that carries nothing is dropped, and identifier-like features are named."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from app.bundle import ColumnSummary
from training.columns import as_numbers
from training.errors import TrainingError

logger = logging.getLogger(__name__)


ROW_INDEX = "row index: no header, whole numbers counting up by one"
IDENTIFIER_ROWS = 20
"""Fewer rows than this are all different by chance too often to call a column an identifier."""


def is_blank_header(name: str) -> bool:
    """A column written without a header: empty, or as pandas names such a column."""
    return name == "" or re.fullmatch(r"Unnamed: \d+", name) is not None


def with_blank_headers(names: Sequence[str], columns: Sequence[str]) -> tuple[str, ...]:
    """`names`, with "" standing for every column that has no header (R's `write.csv` and
    pandas' `to_csv` write the row numbers under an empty header)."""
    blank = [c for c in columns if is_blank_header(c)]
    out = [n for n in names if n != ""]
    if "" in names:
        out += blank or [""]  # none: "" stays, and is reported as not found
    return tuple(dict.fromkeys(out))


class RowIndexCheck:
    """Whether a column holds whole numbers counting up by one, seen in order, chunk by chunk;
    `restart` at the start of each shard, which numbers its rows afresh."""

    def __init__(self) -> None:
        self.counting, self.rows = True, 0
        self._next: float | None = None

    def add(self, column: pd.Series, restart: bool = False) -> None:
        if not self.counting or column.empty:
            return
        numbers = as_numbers(column)
        values = None if numbers is None else numbers.to_numpy()
        if values is None or not np.isfinite(values).all() or values[0] != np.round(values[0]):
            self.counting = False
            return
        expected = values[0] if restart or self._next is None else self._next
        self.counting = values[0] == expected and bool((np.diff(values) == 1).all())
        self._next, self.rows = values[-1] + 1, self.rows + len(values)

    @property
    def is_row_index(self) -> bool:
        return self.counting and self.rows >= 2


def is_row_index(name: str, column: pd.Series) -> bool:
    """A column with no header whose cells count the rows: written by `write.csv` or
    `to_csv` with the index, and never a feature (on sorted data it leaks the target)."""
    if not is_blank_header(name):
        return False
    check = RowIndexCheck()
    check.add(column)
    return check.is_row_index


def warn_identifiers(names: Sequence[str]) -> None:
    if names:
        logger.warning(
            "every value differs in %s, as in an identifier: kept as features; --drop them "
            "unless they mean something",
            ", ".join(names),
        )


def identifier_like(summary: ColumnSummary, rows: int, integral: bool) -> bool:
    """Every one of `rows` values different and none missing, in text or (when `integral`)
    whole numbers. Beyond the streamed distinct-count cap it cannot be told, and is not
    claimed."""
    if summary.distinct_capped or summary.missing or rows < IDENTIFIER_ROWS:
        return False
    return (integral or summary.kind == "categorical") and summary.distinct == rows


def check_columns_exist(
    columns: Sequence[str], source: str, names: Sequence[str], what: str
) -> None:
    if unknown := [n for n in names if n not in columns]:
        listed = ", ".join(map(str, columns))
        raise TrainingError(
            f"{what} {', '.join(map(repr, unknown))} not found in {source}; columns: {listed}"
        )


def useless_reason(distinct_present: int, first_present: object) -> str | None:
    """Why a feature column with these present values carries no information, if it does not."""
    if distinct_present == 0:
        return "all values missing"
    if distinct_present == 1:
        return f"constant: every value is {first_present}"
    return None
