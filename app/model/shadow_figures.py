"""What shadow scoring reports: the served answers against the shadow's, row by row, over a
window of the last rows compared, and the shadow's own latency (see app/model/shadow.py)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

from app.bundle import Decoded, RegressionTarget
from app.model.predictor import Predictor


class Comparison:
    """The served answers against the shadow's, per row, in the target's terms: the absolute
    difference (regression); agreement on the class and, when both versions have the same
    classes (in any order), the total variation distance of the probabilities
    (classification)."""

    def __init__(self, served: Predictor, shadow: Predictor) -> None:
        self.task: Literal["regression", "classification"] = served.metadata.task
        self._shadow_target = shadow.stats.target
        # Labels as decoding gives them, compared by repr: 1, 1.0, True and "1" differ.
        served_classes = _classes(served)
        index = {c: i for i, c in enumerate(served_classes)}
        # The served index of each of the shadow's classes; one the served version does not
        # know never agrees (-1).
        self._to_served = np.array([index.get(c, -1) for c in _classes(shadow)], dtype=int)
        self._same_classes = sorted(served_classes) == sorted(_classes(shadow))
        # The shadow's probability columns in the served version's order.
        self._order = np.argsort(self._to_served) if self._same_classes else None
        self._differs = self.task == "regression" or self._same_classes
        self.columns = 2 if self.task == "classification" and self._same_classes else 1

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """The shadow's outputs in units (regression) or as probabilities (classification)."""
        target = self._shadow_target
        if isinstance(target, RegressionTarget):
            return target.to_units(outputs)
        return target.probabilities(outputs)

    def __call__(self, mine: np.ndarray, served: Sequence[Decoded]) -> np.ndarray:
        """Per row: the absolute difference (regression); agreement (1 or 0) and, with the
        same classes, the distance (classification)."""
        if self.task == "regression":
            n = len(mine)
            theirs = np.fromiter(itertools.chain(*(d.values for d in served)), np.float64, n)
            return np.abs(mine - theirs).reshape(n, 1)
        probabilities = np.concatenate(
            [d.probabilities for d in served if d.probabilities is not None]
        )
        agree: np.ndarray = self._to_served[mine.argmax(axis=1)] == probabilities.argmax(axis=1)
        if self._order is None:
            return agree.astype(np.float64).reshape(-1, 1)
        distance = 0.5 * np.abs(mine[:, self._order] - probabilities).sum(axis=1)
        return np.column_stack([agree, distance])

    def figures(self, values: np.ndarray) -> dict[str, float | None]:
        figures: dict[str, float | None] = dict.fromkeys(("mean_abs", "p99_abs", "agreement"))
        if not len(values):
            return figures
        if self.task == "classification":
            figures["agreement"] = float(values[:, 0].mean())
        if self._differs:
            difference = values[:, -1]
            figures["mean_abs"] = float(difference.mean())
            figures["p99_abs"] = float(np.percentile(difference, 99))
        return figures


def _classes(predictor: Predictor) -> list[str]:
    target = predictor.stats.target
    return [] if isinstance(target, RegressionTarget) else [repr(c) for c in target.classes]


class Ring:
    """The last `size` rows of per-row figures, in an array allocated once."""

    def __init__(self, size: int, columns: int) -> None:
        self._values = np.empty((size, columns), dtype=np.float64)
        self._next = 0
        self._count = 0

    def extend(self, values: np.ndarray) -> None:
        size = len(self._values)
        values = values[-size:]
        n = len(values)
        first = min(n, size - self._next)
        self._values[self._next : self._next + first] = values[:first]
        self._values[: n - first] = values[first:]
        self._next = (self._next + n) % size
        self._count = min(size, self._count + n)

    def values(self) -> np.ndarray:
        """The rows held, in no particular order (the figures need none)."""
        return self._values[: self._count]


def latency_figures(calls: list[tuple[float, int]]) -> dict[str, float | int] | None:
    if not calls:
        return None
    seconds = np.array([s for s, _ in calls])
    rows = sum(r for _, r in calls)
    return {
        "calls": len(calls),
        "p50_seconds": float(np.percentile(seconds, 50)),
        "p99_seconds": float(np.percentile(seconds, 99)),
        "rows_per_call": rows / len(calls),
        "microseconds_per_row": float(seconds.sum()) / rows * 1e6,
    }
