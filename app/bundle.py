"""The model bundle contract: file layout, statistics schema, the transform, load and save.

Training and serving both import this module and nothing else of each other, so the
preprocessing applied at serving time is, by construction, the one fitted in training.
It depends on numpy and pydantic only: importing it must stay cheap.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT_VERSION = 1
SAVED_MODEL_DIR = "saved_model"
STATS_FILE = "preprocessing.json"
METADATA_FILE = "metadata.json"
_PARTIAL_PREFIX = ".partial-"


class BundleError(Exception):
    """A bundle that is missing, incomplete or malformed; the message names the path."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessingStats(_Strict):
    """Everything needed to turn raw feature rows into model inputs and outputs back into units.

    Fitted on the training split only. Missing and infinite values become the fill value,
    then each feature is standardised; the model predicts the standardised target.
    """

    format_version: int = FORMAT_VERSION
    features: list[str] = Field(min_length=1)
    fill_values: list[float]
    means: list[float]
    stds: list[float]
    target: str
    target_mean: float
    target_std: float = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported "
                f"(this code reads version {FORMAT_VERSION})"
            )
        n = len(self.features)
        if len(set(self.features)) != n:
            raise ValueError("feature names are not unique")
        for name in ("fill_values", "means", "stds"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        values = [*self.fill_values, *self.means, *self.stds, self.target_mean, self.target_std]
        if not np.all(np.isfinite(values)):
            raise ValueError("statistics must be finite numbers")
        if min(self.stds) <= 0:
            raise ValueError("standard deviations must be positive")
        return self

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: list[str], target: str) -> Self:
        """Fit on training rows `x` (n, f) with NaN or inf for missing, and targets `y` (n,)."""
        x = _missing_as_nan(x)
        present = (~np.isnan(x)).sum(axis=0)
        # An all-missing column has no mean: fill it with 0, which standardises to 0 as well.
        means = np.divide(
            np.nansum(x, axis=0), present, out=np.zeros(x.shape[1]), where=present > 0
        )
        filled = np.where(np.isnan(x), means, x)
        return cls(
            features=list(features),
            fill_values=means.tolist(),
            means=means.tolist(),
            stds=_safe_std(filled).tolist(),
            target=target,
            target_mean=float(np.mean(y)),
            target_std=float(_safe_std(np.asarray(y, dtype=np.float64)[:, None])[0]),
        )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw rows (n, f) in feature order, NaN or inf meaning missing -> float32 model inputs."""
        x = _missing_as_nan(x)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features, got shape {x.shape}")
        filled = np.where(np.isnan(x), np.asarray(self.fill_values), x)
        scaled: np.ndarray = (filled - np.asarray(self.means)) / np.asarray(self.stds)
        return scaled.astype(np.float32)

    def scale_target(self, y: np.ndarray) -> np.ndarray:
        """Targets in real units -> the standardised values the network is trained on."""
        return ((np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_std).astype(
            np.float32
        )

    def unscale_target(self, y: np.ndarray) -> np.ndarray:
        """Network outputs -> predictions in the target's real units."""
        return np.asarray(y, dtype=np.float64) * self.target_std + self.target_mean


def _missing_as_nan(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float64)  # a copy: callers' arrays are never changed
    x[np.isinf(x)] = np.nan
    return x


def _safe_std(x: np.ndarray) -> np.ndarray:
    # A constant column carries no information; scale 1 keeps it at 0 instead of dividing by 0.
    std = np.std(x, axis=0)
    return np.where(std > 1e-12, std, 1.0)


class Metrics(_Strict):
    """Regression metrics on the held-out test split, in the target's real units."""

    mse: float
    rmse: float
    mae: float
    r2: float


class RowCounts(_Strict):
    train: int
    validation: int
    test: int
    dropped_missing_target: int = 0


class Metadata(_Strict):
    """What a bundle is, where it came from and how good it is."""

    format_version: int = FORMAT_VERSION
    name: str
    version: int
    created_at: datetime
    features: list[str]
    target: str
    metrics: Metrics
    rows: RowCounts
    data_source: str
    data_sha256: str
    training: dict[str, float | int | str]
    tensorflow_version: str
    keras_version: str


_M = TypeVar("_M", bound=BaseModel)


def read_stats(version_dir: Path) -> PreprocessingStats:
    return _read_json(version_dir / STATS_FILE, PreprocessingStats)


def read_metadata(version_dir: Path) -> Metadata:
    return _read_json(version_dir / METADATA_FILE, Metadata)


def _read_json(path: Path, model: type[_M]) -> _M:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(path, "file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"cannot be read ({exc})") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise BundleError(path, f"invalid {model.__name__} at {where}: {first['msg']}") from None


def write_json(path: Path, document: BaseModel) -> None:
    path.write_text(document.model_dump_json(indent=2) + "\n", encoding="utf-8")


def list_versions(model_dir: Path) -> list[int]:
    """Published versions of one model, ascending. Half-written versions are never listed."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version_dir(model_root: Path, name: str, version: int | None = None) -> Path:
    """The directory of `version` of model `name`, or of its newest version when None."""
    model_dir = model_root / name
    versions = list_versions(model_dir)
    if not versions:
        raise BundleError(model_dir, "no model versions found (expected <version>/ directories)")
    if version is None:
        return model_dir / str(versions[-1])
    if version not in versions:
        available = ", ".join(map(str, versions))
        raise BundleError(model_dir / str(version), f"version not found (available: {available})")
    return model_dir / str(version)


@contextmanager
def publish_version(model_dir: Path) -> Iterator[tuple[Path, int]]:
    """Yield a scratch directory and the version number it will get; publish it on success.

    The scratch directory lives beside the versions, so the final rename is atomic: a reader
    scanning `model_dir` sees either no new version or a complete one. If the block raises,
    the scratch directory is removed and nothing is published.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=model_dir))
    scratch.chmod(0o755)  # mkdtemp makes it private; a server running as another user reads it
    try:
        version = _next_version(model_dir)
        yield scratch, version
        _rename_into_place(scratch, model_dir, version)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _next_version(model_dir: Path) -> int:
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _rename_into_place(scratch: Path, model_dir: Path, version: int) -> None:
    target = model_dir / str(version)
    # rename(2) replaces an empty directory silently; refuse any existing one instead.
    if target.exists():
        raise BundleError(target, "another writer published this version meanwhile; run again")
    try:
        scratch.rename(target)
    except OSError as exc:
        raise BundleError(target, f"cannot publish the version ({exc.strerror})") from None
