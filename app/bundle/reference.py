"""The training data's distributions, kept in the bundle for drift: what the served inputs and
outputs are compared against.

Each feature and the output is cut into bins; a distribution is the share of rows in each.
Training counts its sample and the service counts the rows it predicts with the same
`BinCounter`, in the model's own input and output space (standardised numbers, one-hot slots,
raw network outputs), so the two sides bin a row alike to the last bit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from app.bundle.documents import FORMAT_VERSION, Strict
from app.bundle.preprocessing import (
    CategoricalFeature,
    ClassificationTarget,
    NumericFeature,
    PreprocessingStats,
)

NUMERIC_BINS = 10


class Distribution(Strict):
    """Shares of rows by bin, summing to 1.

    Numeric features: bins split by `edges` (a value v is in bin `searchsorted(edges, v,
    "right")`), then a last bin for missing cells. Categorical features: one bin per vocabulary
    entry, one for any other category (rare or unseen), one for missing. The output: bins of
    the prediction split by `edges` (regression), or one per predicted class."""

    kind: Literal["numeric", "categorical", "regression", "classification"]
    labels: list[str]
    """What each bin holds, in the feature's or target's own units, for people."""
    edges: list[float] = Field(default_factory=list)
    """Inner bin edges in the model's space: standardised inputs, or the network's output."""
    shares: list[float]


class ReferenceDistributions(Strict):
    """The training split's distributions: every feature, and the model's output on it."""

    format_version: int = FORMAT_VERSION
    rows: int
    """Training rows counted (a uniform sample of them for large data)."""
    features: dict[str, Distribution]
    output: Distribution


class BinCounter:
    """Counts rows into the reference's bins: one flat vector per call, every feature's bins
    (in `stats.input_columns` order) then the output's, so that running totals are one array."""

    def __init__(self, stats: PreprocessingStats, reference: ReferenceDistributions) -> None:
        spans = stats.input_columns()
        features = {f.name: f for f in stats.features}
        self.names = list(spans)
        self.sizes = [len(reference.features[n].labels) for n in self.names]
        self.sizes.append(len(reference.output.labels))
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.intp)
        self._numeric = [
            (i, spans[n].start, np.asarray(reference.features[n].edges))
            for i, n in enumerate(self.names)
            if isinstance(features[n], NumericFeature)
        ]
        self._categorical = [
            (i, spans[n])
            for i, n in enumerate(self.names)
            if isinstance(features[n], CategoricalFeature)
        ]
        self._output_edges = np.asarray(reference.output.edges)
        self._classes = isinstance(stats.target, ClassificationTarget)
        self.total = int(self.offsets[-1])

    def count(self, x: np.ndarray, missing: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Counts of `x`'s rows (with their `missing` mask) and the network's `outputs`."""
        bins = np.empty((len(x), len(self.sizes)), dtype=np.intp)
        for i, column, edges in self._numeric:
            bins[:, i] = np.searchsorted(edges, x[:, column], side="right")
        for i, span in self._categorical:
            bins[:, i] = np.argmax(x[:, span], axis=1)
        last = np.asarray(self.sizes[:-1]) - 1
        bins[:, :-1] = np.where(missing, last, bins[:, :-1])
        bins[:, -1] = predicted_bins(outputs, self._output_edges, classes=self._classes)
        return np.bincount((bins + self.offsets[:-1]).ravel(), minlength=self.total)

    def split(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """A flat vector of counts, by feature name, and the output's under `OUTPUT`."""
        parts = np.split(counts, self.offsets[1:-1])
        return {**dict(zip(self.names, parts[:-1], strict=True)), OUTPUT: parts[-1]}


OUTPUT = ""
"""The output's key in `BinCounter.split`: no feature's name is empty."""


def predicted_bins(outputs: np.ndarray, edges: np.ndarray, *, classes: bool) -> np.ndarray:
    """The output's bin of each row: the predicted class, or the prediction's bin by `edges`."""
    if not classes:
        return np.searchsorted(edges, outputs[:, 0], side="right")
    if outputs.shape[1] == 1:
        return (outputs[:, 0] >= 0.5).astype(np.intp)
    predicted: np.ndarray = np.argmax(outputs, axis=1)
    return predicted
