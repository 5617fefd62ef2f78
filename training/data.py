"""Read the training data, clean its cells, decide each column's kind, and split the rows."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from app.bundle import (
    ColumnSummary,
    DataSummary,
    category_key,
)
from training.column_rules import (
    ROW_INDEX,
    check_columns_exist,
    identifier_like,
    is_row_index,
    useless_reason,
    warn_identifiers,
    with_blank_headers,
)
from training.columns import as_numbers, as_text, first_non_number, is_integral, is_missing
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
    if not columns:
        raise TrainingError(f"{source} has no usable feature columns besides the target {target!r}")
    if len(y) < MIN_ROWS:
        raise TrainingError(
            f"too few rows to split into train, validation and test: {len(y)} usable, "
            f"at least {MIN_ROWS} needed"
        )
    clean = pd.DataFrame(columns, index=y.index).assign(**{target: y})
    summaries = {
        name: ColumnSummary(
            kind=kinds[name], missing=int(is_missing(col).sum()), distinct=int(col.nunique())
        )
        for name, col in columns.items()
    }
    identifiers = [
        name
        for name, col in columns.items()
        if identifier_like(summaries[name], len(col), kinds[name] == "numeric" and is_integral(col))
    ]
    warn_identifiers(identifiers)
    summary = DataSummary(
        source=source,
        sha256=digest,
        rows_read=len(y) + dropped_rows,
        dropped_missing_target=dropped_rows,
        columns=summaries,
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
