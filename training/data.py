"""Read the training data, clean its cells, decide each column's kind, and split the rows."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from app.bundle import (
    MISSING_WORDS,
    ColumnSummary,
    DataSummary,
    NotANumber,
    category_key,
    read_numbers,
)
from training.errors import TrainingError

logger = logging.getLogger(__name__)

Task = Literal["regression", "classification"]

BUILTIN_SOURCES = ("sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine")
DEFAULT_SOURCE = BUILTIN_SOURCES[0]
MIN_ROWS = 10
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2  # of the rows left after the test split
MAX_AUTO_CLASSES = 20  # an integer target with at most this many values is a class label


@dataclass(frozen=True)
class Dataset:
    """Usable rows with cleaned columns: numeric ones as float64, categorical ones as text."""

    frame: pd.DataFrame
    features: list[str]
    categorical: list[str]
    target: str
    task: Task
    summary: DataSummary


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def load_dataset(
    source: str | Path | None,
    target: str,
    task: Task | Literal["auto"] = "auto",
    categorical: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> Dataset:
    """Read a CSV or Parquet file (or a data set scikit-learn ships) and make it trainable."""
    source = str(source or DEFAULT_SOURCE)
    if source in BUILTIN_SOURCES:
        frame = _builtin_frame(source, target)
        digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    else:
        frame, digest = _read_file(Path(source)), _file_sha256(Path(source))
    frame.columns = [str(c).strip() for c in frame.columns]
    names = list(frame.columns)
    categorical, drop = with_blank_headers(categorical, names), with_blank_headers(drop, names)
    check_columns_exist(names, source, [target], "target column")
    check_columns_exist(names, source, categorical, "--categorical column")
    check_columns_exist(names, source, drop, "--drop column")

    dropped = {c: "dropped by --drop" for c in drop if c != target}
    for name in names:
        if name not in dropped and name != target and is_row_index(name, frame[name]):
            dropped[name] = ROW_INDEX
    y, task, dropped_rows = _clean_target(frame[target], target, task)
    frame = frame.loc[y.index]
    kinds: dict[str, Literal["numeric", "categorical"]] = {}
    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        if name == target or name in dropped:
            continue
        column, kind = _clean_feature(frame[name], force_categorical=name in categorical)
        if reason := _useless(column):
            dropped[name] = reason
            continue
        kinds[name], columns[name] = kind, column
    if dropped_names := [c for c in dropped if c not in drop]:
        logger.warning(
            "dropped columns: %s", ", ".join(f"{c} ({dropped[c]})" for c in dropped_names)
        )
    identifiers = [name for name, col in columns.items() if _identifier_like(col, kinds[name])]
    warn_identifiers(identifiers)
    if not columns:
        raise TrainingError(f"{source} has no usable feature columns besides the target {target!r}")
    if len(y) < MIN_ROWS:
        raise TrainingError(
            f"too few rows to split into train, validation and test: {len(y)} usable, "
            f"at least {MIN_ROWS} needed"
        )
    clean = pd.DataFrame(columns, index=y.index).assign(**{target: y})
    summary = DataSummary(
        source=source,
        sha256=digest,
        rows_read=len(y) + dropped_rows,
        dropped_missing_target=dropped_rows,
        columns={
            name: ColumnSummary(
                kind=kinds[name], missing=int(is_missing(col).sum()), distinct=int(col.nunique())
            )
            for name, col in columns.items()
        },
        dropped_columns=dropped,
        identifiers=identifiers,
    )
    features = list(columns)
    return Dataset(
        frame=clean,
        features=features,
        categorical=[c for c in features if kinds[c] == "categorical"],
        target=target,
        task=task,
        summary=summary,
    )


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


def _identifier_like(column: pd.Series, kind: str) -> bool:
    if len(column) < IDENTIFIER_ROWS or column.isna().any():
        return False
    if kind == "numeric" and not is_integral(column):
        return False
    return bool(column.nunique() == len(column))


def feature_columns(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, np.ndarray]:
    """The columns the bundle's transform takes, by name."""
    return {name: frame[name].to_numpy() for name in features}


def split_dataset(dataset: Dataset, seed: int) -> Split:
    """A shuffled train / validation / test split, stratified for classification when possible."""
    rest, test = split_rows(dataset, dataset.frame, TEST_FRACTION, seed)
    train, validation = split_rows(dataset, rest, VALIDATION_FRACTION, seed)
    return Split(train=train, validation=validation, test=test)


def split_rows(
    dataset: Dataset, frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`frame` shuffled into (1 - fraction, fraction), stratified by class where every class
    can have a row on both sides."""
    labels = frame[dataset.target]
    stratify = None
    if dataset.task == "classification" and labels.value_counts().min() >= 2:
        n_test = int(np.ceil(fraction * len(frame)))
        if n_test >= labels.nunique() and len(frame) - n_test >= labels.nunique():
            stratify = labels.map(category_key)
    first, second = train_test_split(
        frame, test_size=fraction, random_state=seed, stratify=stratify
    )
    return first, second


def _builtin_frame(source: str, target: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{source.removeprefix('sklearn:')}")
    frame: pd.DataFrame = loader(as_frame=True).frame
    return frame.rename(columns={"target": target})


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TrainingError(f"data file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return _read_csv(path)
    except pd.errors.EmptyDataError:
        raise TrainingError(f"data file is empty: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"cannot read data file {path}: {reason}") from None


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text: this module decides what is a number, the same way for all files.

    Arrow's reader parses about thirty times as fast as pandas' own; it refuses a row with
    fewer cells than the header, which pandas' reader pads with missing cells, so such a file
    is read again that way.
    """
    import pyarrow as pa

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, engine="pyarrow")
    except (pa.ArrowInvalid, ValueError) as exc:
        logger.info("%s: read again by pandas' own reader (%s)", path, str(exc).splitlines()[0])
        return pd.read_csv(path, dtype=str, keep_default_na=False)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_columns_exist(
    columns: Sequence[str], source: str, names: Sequence[str], what: str
) -> None:
    if unknown := [n for n in names if n not in columns]:
        listed = ", ".join(map(str, columns))
        raise TrainingError(
            f"{what} {', '.join(map(repr, unknown))} not found in {source}; columns: {listed}"
        )


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


def _clean_feature(
    column: pd.Series, force_categorical: bool
) -> tuple[pd.Series, Literal["numeric", "categorical"]]:
    numbers = None if force_categorical else as_numbers(column)
    if numbers is not None:
        return numbers, "numeric"
    return as_text(column), "categorical"


def _useless(column: pd.Series) -> str | None:
    present = column[~is_missing(column)]
    return useless_reason(present.nunique(), present.iloc[0] if len(present) else None)


def useless_reason(distinct_present: int, first_present: object) -> str | None:
    """Why a feature column with these present values carries no information, if it does not."""
    if distinct_present == 0:
        return "all values missing"
    if distinct_present == 1:
        return f"constant: every value is {first_present}"
    return None


def _clean_target(
    column: pd.Series, name: str, task: Task | Literal["auto"]
) -> tuple[pd.Series, Task, int]:
    """The target without missing rows, as floats (regression) or labels (classification)."""
    numbers = as_numbers(column)
    if task == "regression" and numbers is None:
        row = first_non_number(column) or 0
        raise TrainingError(
            f"target column {name!r} is not numeric: row {row + 1} holds {column.iloc[row]!r} "
            "(use --task classification to predict it as a class)"
        )
    if task == "auto":
        task = "classification" if numbers is None or _looks_like_classes(numbers) else "regression"
    if task == "classification":
        y = labels_of(column, numbers).dropna()
    else:
        y = numbers[np.isfinite(numbers)] if numbers is not None else column.iloc[:0]
    dropped = len(column) - len(y)
    if dropped:
        logger.warning("dropped %d rows whose target %r is missing", dropped, name)
    if task == "classification" and y.nunique() < 2:
        only = ", ".join(map(repr, y.unique())) or "none"
        raise TrainingError(f"classification target {name!r} has fewer than 2 classes: {only}")
    return y, task, dropped


def _looks_like_classes(numbers: pd.Series) -> bool:
    present = numbers[np.isfinite(numbers)]
    return looks_like_classes(present.nunique(), len(present), is_integral(present))


def looks_like_classes(distinct: int, present: int, integral: bool) -> bool:
    """Whether a numeric target with `present` values, `distinct` of them, holds class labels."""
    return integral and distinct <= min(MAX_AUTO_CLASSES, max(2, present // 10))


def is_integral(numbers: pd.Series) -> bool:
    return bool((numbers == np.round(numbers)).all())


def labels_of(
    column: pd.Series, numbers: pd.Series | None, integral: bool | None = None
) -> pd.Series:
    """Class labels in their natural JSON type: integers, or text as written (stripped).

    Numbers are integers when `integral` (by default: when every one of them is whole).
    """
    if numbers is not None:
        present = numbers[np.isfinite(numbers)]
        if integral is None:
            integral = is_integral(present)
        labels: pd.Series = (present.astype(np.int64) if integral else present).astype(object)
        return labels
    if pd.api.types.is_bool_dtype(column):
        return column.astype(object)
    text = column.map(lambda v: None if category_key(v) is None else str(v).strip())
    return text.astype(object)
