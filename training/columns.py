"""Columns read cell by cell as the bundle's cell rule reads them: as text (category keys), as
numbers, and what is missing; the pandas forms of `app.bundle.cells`, for training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.bundle import MISSING_WORDS, NotANumber, category_key, read_numbers


def as_text(column: pd.Series) -> pd.Series:
    """Cells as canonical text (see `category_key`), NaN where missing."""
    if not _all_strings(column):
        return column.map(category_key).astype(object)
    # `category_key` for text, column-wise: CSV columns are read as text, and this runs on
    # every cell of every pass over streamed data.
    stripped = column.str.strip()
    lowered = stripped.str.lower()
    text = stripped.where(~lowered.isin(("true", "false")), lowered).astype(object)
    text[lowered.isin(MISSING_WORDS)] = np.nan  # as `map` leaves a None
    return text


def as_numbers(column: pd.Series) -> pd.Series | None:
    """float64 with NaN for missing cells and inf kept, or None if some cell is not a number.

    Text is read by the bundle's cell rule, the one every serving path uses.
    """
    try:
        return _read_numbers(column)
    except NotANumber:
        return None


def first_non_number(column: pd.Series) -> int | None:
    """The position of the first cell that the cell rule does not read as a number."""
    try:
        _read_numbers(column)
    except NotANumber as exc:
        return exc.index
    return None


def _read_numbers(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64)
    # pandas' own missing markers (NA, NaT) become NaN, which the rule reads as missing.
    cells = column.to_numpy(dtype=object, na_value=np.nan)
    return pd.Series(read_numbers(cells), index=column.index, name=column.name)


def _all_strings(column: pd.Series) -> bool:
    # pandas's text dtype (CSV cells), or objects that are all strings; not mixed objects.
    return pd.api.types.is_string_dtype(column) and (
        column.dtype != object or pd.api.types.infer_dtype(column, skipna=False) == "string"
    )


def is_missing(column: pd.Series) -> pd.Series:
    missing: pd.Series = ~np.isfinite(column) if column.dtype == np.float64 else column.isna()
    return missing


def is_integral(numbers: pd.Series) -> bool:
    return bool((numbers == np.round(numbers)).all())
