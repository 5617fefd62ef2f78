"""The preprocessing statistics and the transform that applies them, in training and serving.

Missing and infinite numbers become the training mean and every number is standardised;
categories are one-hot encoded over a vocabulary fitted on the training split, with one more
slot for rare, unseen and missing values. The target is standardised (regression) or indexed
(classification), and `decode` turns network outputs back into units or labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, NamedTuple, Self

import numpy as np
from pydantic import (
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from app.bundle.cells import category_key
from app.bundle.documents import FORMAT_VERSION, Strict

MAX_VOCABULARY = 1000
MISSING_SLOT = -1

# Class labels keep their original JSON type: "yes", 3, true. Strict, so 1 and true stay apart.
Label = StrictBool | StrictInt | StrictFloat | StrictStr


class NumericFeature(Strict):
    """Missing or infinite -> `fill_value`, then standardised with `mean` and `std`."""

    kind: Literal["numeric"] = "numeric"
    name: str
    fill_value: float
    mean: float
    std: float = Field(gt=0)

    @property
    def width(self) -> int:
        return 1

    @classmethod
    def fit(cls, name: str, values: np.ndarray) -> Self:
        x = _missing_as_nan(values)
        present = x[~np.isnan(x)]
        # An all-missing column has no mean: fill it with 0, which standardises to 0 as well.
        mean = float(present.mean()) if present.size else 0.0
        return cls(name=name, fill_value=mean, mean=mean, std=_safe_std(np.nan_to_num(x, nan=mean)))

    @classmethod
    def from_moments(cls, name: str, rows: int, present: int, mean: float, m2: float) -> Self:
        """The same statistics as `fit`, from running moments: `present` of `rows` values were
        there, with this mean and sum of squared deviations. Missing cells, filled with the
        mean, add nothing to the deviations."""
        mean = mean if present else 0.0
        std = float(np.sqrt(m2 / rows)) if rows else 0.0
        return cls(name=name, fill_value=mean, mean=mean, std=_usable_std(std))


class CategoricalFeature(Strict):
    """One-hot over `vocabulary`, plus a last slot for anything else: rare, unseen or missing."""

    kind: Literal["categorical"] = "categorical"
    name: str
    vocabulary: list[str]
    _index: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _: object) -> None:
        self._index = {key: i for i, key in enumerate(self.vocabulary)}

    @property
    def width(self) -> int:
        return len(self.vocabulary) + 1

    @classmethod
    def fit(cls, name: str, values: Sequence[object] | np.ndarray, min_count: int) -> Self:
        """Keep categories seen at least `min_count` times, most frequent first (ties by name)."""
        return cls.from_counts(
            name, Counter(k for k in map(category_key, values) if k is not None), min_count
        )

    @classmethod
    def from_counts(cls, name: str, counts: Mapping[str, int], min_count: int) -> Self:
        """`fit`, from how often each category key was seen."""
        kept = sorted(
            (k for k, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k)
        )
        return cls(name=name, vocabulary=kept[:MAX_VOCABULARY])

    def encode(self, values: Sequence[object] | np.ndarray) -> np.ndarray:
        return self.one_hot(self.slots(values))

    def slots(self, values: Sequence[object] | np.ndarray) -> np.ndarray:
        """Each value's one-hot slot: its vocabulary index, the last slot for a rare or unseen
        category, and `MISSING_SLOT` for a missing one (which the one-hot puts in the last)."""
        other, index = len(self.vocabulary), self._index  # a local: pydantic's lookup is slow
        return np.fromiter(
            (
                index.get(k, other) if (k := category_key(v)) is not None else MISSING_SLOT
                for v in values
            ),
            dtype=np.intp,
            count=len(values),
        )

    def one_hot(self, slots: np.ndarray) -> np.ndarray:
        out = np.zeros((len(slots), self.width))
        out[np.arange(len(slots)), np.where(slots == MISSING_SLOT, self.width - 1, slots)] = 1.0
        return out


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class RegressionTarget(Strict):
    """The network predicts the standardised target; predictions are scaled back to units."""

    kind: Literal["regression"] = "regression"
    name: str
    mean: float
    std: float = Field(gt=0)

    @property
    def output_width(self) -> int:
        return 1

    @classmethod
    def fit(cls, name: str, y: np.ndarray) -> Self:
        y = np.asarray(y, dtype=np.float64)
        return cls(name=name, mean=float(y.mean()), std=_safe_std(y))

    @classmethod
    def from_moments(cls, name: str, rows: int, mean: float, m2: float) -> Self:
        """`fit`, from the running mean and sum of squared deviations of `rows` values."""
        return cls(name=name, mean=mean, std=_usable_std(float(np.sqrt(m2 / rows))))

    def encode(self, y: Sequence[object] | np.ndarray) -> np.ndarray:
        return ((np.asarray(y, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_units(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs (or encoded targets), (n,) or (n, 1), in the target's units."""
        values = np.asarray(outputs, dtype=np.float64).reshape(len(outputs))
        units: np.ndarray = values * self.std + self.mean
        return units


class ClassificationTarget(Strict):
    """The network gives P(classes[1]) (binary, one sigmoid) or one softmax per class."""

    kind: Literal["classification"] = "classification"
    name: str
    classes: list[Label] = Field(min_length=2)

    @property
    def output_width(self) -> int:
        return 1 if len(self.classes) == 2 else len(self.classes)

    @classmethod
    def fit(cls, name: str, labels: Sequence[object] | np.ndarray) -> Self:
        # Keyed by type and value: a set would merge 1 and True, which compare equal.
        unique = {_label_order(label): label for label in map(_plain, labels)}
        return cls(name=name, classes=[unique[key] for key in sorted(unique)])

    def encode(self, y: Sequence[object] | np.ndarray) -> np.ndarray:
        """Labels -> class indices; a label not among `classes` is a ValueError."""
        index = {_label_order(c): i for i, c in enumerate(self.classes)}
        try:
            return np.array([index[_label_order(_plain(v))] for v in y], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"label {exc.args[0][1]!r} is not one of {self.classes}") from None

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs -> (n, classes) probabilities, each row summing to 1."""
        out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), self.output_width)
        p = np.hstack([1.0 - out, out]) if len(self.classes) == 2 else out
        p = np.clip(p, 0.0, 1.0)
        # float32 softmax rows miss 1 by ~1e-7; renormalised, they are probabilities exactly.
        normalised: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return normalised


Target = Annotated[RegressionTarget | ClassificationTarget, Field(discriminator="kind")]


@dataclass(frozen=True)
class Decoded:
    """Network outputs in the caller's terms."""

    values: list[Any]
    """Regression: predictions in the target's units. Classification: predicted labels."""
    probabilities: np.ndarray | None = None
    """Classification only: (n, len(classes)), columns in the order of `classes`."""


class PreprocessingStats(Strict):
    """Everything needed to turn raw columns into model inputs, and outputs into answers.

    Fitted on the training split only. Training and serving both call `transform` and
    `decode`, so the two cannot drift apart.
    """

    format_version: int = FORMAT_VERSION
    features: list[Feature] = Field(min_length=1)
    target: Target

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported "
                f"(this code reads version {FORMAT_VERSION})"
            )
        if len(set(self.feature_names)) != len(self.features):
            raise ValueError("feature names are not unique")
        numbers = [
            v
            for f in self.features
            if isinstance(f, NumericFeature)
            for v in (f.fill_value, f.mean)
        ]
        if isinstance(self.target, RegressionTarget):
            numbers += [self.target.mean, self.target.std]
        if not np.all(np.isfinite(numbers)):
            raise ValueError("statistics must be finite numbers")
        return self

    @cached_property
    def _encoder(self) -> _Encoder:
        # Built on first use and not a field: documents compare and serialise without it.
        return _Encoder(self.features)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def input_width(self) -> int:
        return sum(f.width for f in self.features)

    def input_columns(self) -> dict[str, slice]:
        """Feature name -> the columns of the model's input it becomes, in `transform`'s
        layout."""
        ordered: list[Feature] = [f for f in self.features if isinstance(f, NumericFeature)]
        ordered += [f for f in self.features if isinstance(f, CategoricalFeature)]
        spans, start = {}, 0
        for feature in ordered:
            spans[feature.name] = slice(start, start + feature.width)
            start += feature.width
        return spans

    def transform(self, columns: Mapping[str, Sequence[object] | np.ndarray]) -> np.ndarray:
        """Raw columns by feature name (None, NaN or inf meaning missing) -> float32 inputs.

        The layout: every numeric feature, in feature order, then each categorical feature's
        one-hot block, in feature order.
        """
        return self.encode_columns(columns).x

    def transform_rows(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The same as `transform`, from rows that map every feature name to its value."""
        return self._encoder.rows(rows).x

    def encode_columns(self, columns: Mapping[str, Sequence[object] | np.ndarray]) -> Encoded:
        """`transform`, with which cells were missing."""
        lengths = {len(columns[f.name]) for f in self.features}
        if len(lengths) != 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        return self._encoder.columns(columns, lengths.pop())

    def encode_rows(self, rows: Sequence[Mapping[str, object]]) -> Encoded:
        """`transform_rows`, with which cells were missing."""
        return self._encoder.rows(rows)

    def decode(self, outputs: np.ndarray) -> Decoded:
        target = self.target
        if isinstance(target, RegressionTarget):
            return Decoded(values=target.to_units(outputs).tolist())
        probabilities = target.probabilities(outputs)
        labels = [target.classes[i] for i in probabilities.argmax(axis=1)]
        return Decoded(values=labels, probabilities=probabilities)


class Encoded(NamedTuple):
    """Model inputs, and which cells were missing: (rows, features) in the inputs' layout
    order (`input_columns`), before the transform filled them."""

    x: np.ndarray
    missing: np.ndarray


class _Encoder:
    """The transform, with the statistics laid out as arrays once: it runs on every request."""

    __slots__ = ("categorical", "numeric", "scale", "scaled_fill", "shift")

    def __init__(self, features: Sequence[NumericFeature | CategoricalFeature]) -> None:
        numeric = [f for f in features if isinstance(f, NumericFeature)]
        self.numeric = [f.name for f in numeric]
        std = np.array([f.std for f in numeric])
        mean = np.array([f.mean for f in numeric])
        # (x - mean) / std as one multiply-add; a missing cell becomes the scaled fill value.
        self.scale = 1.0 / std
        self.shift = -mean / std
        self.scaled_fill = (np.array([f.fill_value for f in numeric]) - mean) / std
        self.categorical = [f for f in features if isinstance(f, CategoricalFeature)]

    def rows(self, rows: Sequence[Mapping[str, object]]) -> Encoded:
        names = self.numeric
        numeric = np.array([[row[name] for name in names] for row in rows], dtype=np.float64)
        categorical = [[row[f.name] for row in rows] for f in self.categorical]
        return self._encode(numeric.reshape(len(rows), len(names)), categorical)

    def columns(self, columns: Mapping[str, Sequence[object] | np.ndarray], n: int) -> Encoded:
        numeric = np.array([columns[name] for name in self.numeric], dtype=np.float64)
        categorical = [columns[f.name] for f in self.categorical]
        return self._encode(numeric.T.reshape(n, len(self.numeric)), categorical)

    def _encode(
        self, numeric: np.ndarray, categorical: Sequence[Sequence[object] | np.ndarray]
    ) -> Encoded:
        scaled: np.ndarray = numeric * self.scale + self.shift
        # Missing: NaN (None) and both infinities in the input. A finite input too far out to
        # standardise stays infinite, for the server to refuse rather than guess.
        missing = ~np.isfinite(numeric)
        if missing.any():
            scaled = np.where(missing, self.scaled_fill, scaled)
        if categorical:
            slots = [f.slots(c) for f, c in zip(self.categorical, categorical, strict=True)]
            blocks = [f.one_hot(s) for f, s in zip(self.categorical, slots, strict=True)]
            scaled = np.hstack([scaled, *blocks])
            missing = np.column_stack([missing, *(s == MISSING_SLOT for s in slots)])
        return Encoded(scaled.astype(np.float32), missing)


def _missing_as_nan(values: Sequence[object] | np.ndarray) -> np.ndarray:
    x = np.array(values, dtype=np.float64)  # a copy (None becomes NaN); callers' data is kept
    x[np.isinf(x)] = np.nan
    return x


def _safe_std(x: np.ndarray) -> float:
    return _usable_std(float(np.std(x)))


def _usable_std(std: float) -> float:
    # A constant column carries no information; scale 1 keeps it at 0 instead of dividing by 0.
    return std if std > 1e-12 else 1.0


def _plain(value: object) -> Label:
    """numpy scalars -> the Python value JSON will carry."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _label_order(label: Label) -> tuple[str, Label]:
    # Sort and compare labels by type first: 1, 1.0 and True are different classes.
    return (type(label).__name__, label)
