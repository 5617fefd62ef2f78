"""Read the training data, check it, and split it into train, validation and test rows."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from training.errors import TrainingError

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "sklearn:load_diabetes"
MIN_ROWS = 10
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2  # of the rows left after the test split


@dataclass(frozen=True)
class Dataset:
    """Feature columns and target of the usable rows, plus where they came from."""

    frame: pd.DataFrame
    features: list[str]
    target: str
    source: str
    sha256: str
    dropped_missing_target: int


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def load_dataset(path: Path | None, target: str) -> Dataset:
    """Read `path` (or scikit-learn's diabetes data when None) and check it can be trained on."""
    if path is None:
        frame, source, digest = _default_frame(target)
    else:
        frame, source, digest = _read_csv(path), str(path), _file_sha256(path)
    return _checked(frame, target, source, digest)


def features_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns as float64 in the bundle's order; NaN and inf stay as they are."""
    return frame[features].to_numpy(dtype=np.float64)


def split_dataset(dataset: Dataset, seed: int) -> Split:
    """A shuffled train / validation / test split, the same for the same data and seed."""
    rest, test = train_test_split(dataset.frame, test_size=TEST_FRACTION, random_state=seed)
    train, validation = train_test_split(rest, test_size=VALIDATION_FRACTION, random_state=seed)
    return Split(train=train, validation=validation, test=test)


def _default_frame(target: str) -> tuple[pd.DataFrame, str, str]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return frame, DEFAULT_SOURCE, digest


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TrainingError(f"data file not found: {path}")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TrainingError(f"data file is empty: {path}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"cannot read data file {path}: {reason}") from None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(frame: pd.DataFrame, target: str, source: str, digest: str) -> Dataset:
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise TrainingError(f"target column {target!r} not found in {source}; columns: {columns}")
    y = pd.to_numeric(frame[target], errors="coerce")
    bad = frame[target].notna() & y.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TrainingError(
            f"target column {target!r} is not numeric: row {row + 1} holds "
            f"{frame[target].iloc[row]!r} (classification is not supported yet)"
        )
    features = [str(c) for c in frame.columns if c != target]
    if not features:
        raise TrainingError(f"{source} has no feature columns besides the target {target!r}")
    text_columns = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if text_columns:
        raise TrainingError(
            f"feature columns are not numeric: {', '.join(text_columns)} "
            "(only numeric features are supported)"
        )
    y = y.replace([np.inf, -np.inf], np.nan)
    keep = y.notna().to_numpy()
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("dropped %d rows whose target is missing or infinite", dropped)
    usable = frame.loc[keep, [*features, target]].assign(**{target: y[keep]})
    if len(usable) < MIN_ROWS:
        raise TrainingError(
            f"too few rows to split into train, validation and test: {len(usable)} usable, "
            f"at least {MIN_ROWS} needed"
        )
    return Dataset(usable, features, target, source, digest, dropped)
