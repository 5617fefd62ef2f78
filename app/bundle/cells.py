"""The one rule that reads a cell: missing, a number, or not a number; and a category's key.

Training (CSV and Parquet, in memory and streamed), the CSV and split-JSON bodies of
POST /predict, the v2 BYTES inputs of numeric features and `python -m app.score` all read
cells here, so a file a model was trained on scores as it trained.

A numeric cell, once stripped of white space (any Unicode space), is
- missing when it is one of `MISSING_WORDS` in any case, or None or NaN;
- a number when it is an optional sign and ASCII digits with an optional decimal point and
  exponent (`1`, `-2.5`, `+.5`, `1e3`, `1.5E-2`), or `inf`/`infinity` with an optional sign
  (infinite, which the transform then fills like a missing value);
- otherwise not a number: thousands separators (`1,000`), underscores (`1_000`, which Python's
  `float` takes), digits of other scripts (`١٢٣`, which `float` takes too) and hex are refused,
  as pandas and spreadsheets refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

MISSING_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>"})
"""Cells that mean "missing", compared after stripping and lower-casing."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?inf(?:inity)?")
# Characters of a plain number: columns made only of them are checked and cast in one go.
_PLAIN = np.zeros(128, dtype=bool)
_PLAIN[[ord(c) for c in "0123456789.+-eE"]] = True
_PLAIN_WIDTH = 40


class NotANumber(ValueError):
    """A cell of a numeric column that the rule cannot read as a number; `index` is its
    position when a column was read."""

    def __init__(self, cell: object, index: int | None = None) -> None:
        super().__init__(f"{cell!r} is not a number")
        self.cell = cell
        self.index = index


def read_number(cell: object) -> float:
    """One numeric cell -> its float, NaN when missing (infinities kept); NotANumber else."""
    if cell is None:
        return float("nan")
    if isinstance(cell, bool | np.bool_):
        raise NotANumber(cell)
    if isinstance(cell, int | float | np.integer | np.floating):
        return float(cell)
    if isinstance(cell, bytes):
        try:
            cell = cell.decode("utf-8")
        except UnicodeDecodeError:
            raise NotANumber(cell) from None
    if not isinstance(cell, str):
        raise NotANumber(cell)
    text = cell.strip()
    if text.lower() in MISSING_WORDS:
        return float("nan")
    if _NUMBER.fullmatch(text.lower()) is None:
        raise NotANumber(cell)
    return float(text)


def read_numbers(cells: Sequence[object] | np.ndarray) -> np.ndarray:
    """`read_number` over a column: float64 values, NaN where missing (infinities kept).
    The first cell that is not a number, in order, raises NotANumber with its index.

    Cells spelled with digits, signs, points and exponents only (nearly all of a numeric
    column) are checked and converted together; only the others go one by one, and a text
    column stops at its first such cell.
    """
    column = cells if isinstance(cells, np.ndarray) else np.asarray(cells, dtype=object)
    if column.dtype.kind in "fiu":
        return column.astype(np.float64)
    if column.dtype.kind == "b":
        if len(column):
            raise NotANumber(column[0], 0)
        return np.zeros(0)
    column = column.astype(object, copy=False)
    values = np.full(len(column), np.nan)
    plain = _plain_cells(column)
    if plain.any():
        try:
            # Python's float on each: for these spellings, exactly `read_number`'s reading.
            values[plain] = column[plain].astype(np.float64)
        except ValueError:  # a malformed one such as "1e" or "+-1": read them one by one
            plain[:] = False
    for i in np.flatnonzero(~plain):
        try:
            values[i] = read_number(column[i])
        except NotANumber as exc:
            raise NotANumber(exc.cell, int(i)) from None
    return values


def _plain_cells(column: np.ndarray) -> np.ndarray:
    """Which cells are short strings made only of the characters of a plain number."""
    lengths = np.fromiter(
        (len(c) if isinstance(c, str) else 0 for c in column), dtype=np.intp, count=len(column)
    )
    plain = np.zeros(len(column), dtype=bool)
    # Longer cells take the slow path: the check below costs width x rows of memory.
    candidates = np.flatnonzero((lengths > 0) & (lengths <= _PLAIN_WIDTH))
    if len(candidates):
        codes = column[candidates].astype(np.str_).view(np.uint32).reshape(len(candidates), -1)
        # Padding is 0; anything beyond ASCII maps to DEL, which is not allowed.
        allowed = (codes == 0) | _PLAIN[np.minimum(codes, 127)]
        plain[candidates] = allowed.all(axis=1)
    return plain


def category_key(value: object) -> str | None:
    """The canonical form of a categorical cell, the same in training and serving.

    Strings are stripped, booleans and integral numbers spelled one way (`True`, `"true"` ->
    "true"; `3`, `3.0`, `"3"` -> "3"), and NaN or NA-like text is missing (None).
    """
    if isinstance(value, bool | np.bool_):
        text = "true" if value else "false"
    elif isinstance(value, int | np.integer):
        text = str(int(value))
    elif isinstance(value, float | np.floating):
        number = float(value)
        finite = np.isfinite(number)
        text = "" if not finite else str(int(number)) if number.is_integer() else repr(number)
    else:
        text = "" if value is None else str(value).strip()
    lowered = text.lower()
    if lowered in MISSING_WORDS:
        return None
    return lowered if lowered in ("true", "false") else text
