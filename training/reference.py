"""The reference distributions written into the bundle: the training split's features and the
model's output on them, in bins the service counts live rows into (`app.bundle.reference`)."""

from __future__ import annotations

import itertools

import numpy as np

from app.bundle import (
    CategoricalFeature,
    ClassificationTarget,
    Encoded,
    NumericFeature,
    PreprocessingStats,
)
from app.bundle.reference import (
    NUMERIC_BINS,
    OUTPUT,
    BinCounter,
    Distribution,
    ReferenceDistributions,
)

REFERENCE_ROWS = 50_000
"""Training rows the distributions are counted on at most (a uniform sample beyond): ten bins'
shares are as exact from them as from millions."""


def reference_sample(rows: Encoded, seed: int) -> Encoded:
    """The rows the reference is counted on: all of `rows`, or a uniform sample of
    `REFERENCE_ROWS` (the rows `DataFrame.sample(n, random_state=seed)` would pick)."""
    if len(rows.x) <= REFERENCE_ROWS:
        return rows
    picked = np.random.RandomState(seed).choice(len(rows.x), REFERENCE_ROWS, replace=False)
    return Encoded(rows.x[picked], rows.missing[picked])


def reference_distributions(
    stats: PreprocessingStats, x: np.ndarray, missing: np.ndarray, outputs: np.ndarray
) -> ReferenceDistributions:
    """Bins from the quantiles of training rows `x` (with their `missing` mask) and of the
    network's `outputs` on them, and each bin's share of those rows."""
    spans = stats.input_columns()
    shaped: dict[str, Distribution] = {}
    for position, feature in enumerate(_in_layout_order(stats)):
        if isinstance(feature, NumericFeature):
            column = x[~missing[:, position], spans[feature.name].start]
            edges = _quantile_edges(column)
            units = edges * feature.std + feature.mean
            shaped[feature.name] = Distribution(
                kind="numeric",
                labels=[*_range_labels(units), "missing"],
                edges=edges.tolist(),
                shares=[],
            )
        else:
            shaped[feature.name] = Distribution(
                kind="categorical", labels=[*feature.vocabulary, "other", "missing"], shares=[]
            )
    target = stats.target
    if isinstance(target, ClassificationTarget):
        output = Distribution(
            kind="classification", labels=[str(c) for c in target.classes], shares=[]
        )
    else:
        edges = _quantile_edges(outputs[:, 0])
        output = Distribution(
            kind="regression",
            labels=_range_labels(target.to_units(edges[:, None]).ravel()),
            edges=edges.tolist(),
            shares=[],
        )
    empty = ReferenceDistributions(rows=len(x), features=shaped, output=output)
    counter = BinCounter(stats, empty)
    counts = counter.split(counter.count(x, missing, outputs))
    total = max(len(x), 1)
    return ReferenceDistributions(
        rows=len(x),
        features={
            name: d.model_copy(update={"shares": (counts[name] / total).tolist()})
            for name, d in shaped.items()
        },
        output=output.model_copy(update={"shares": (counts[OUTPUT] / total).tolist()}),
    )


def _in_layout_order(stats: PreprocessingStats) -> list[NumericFeature | CategoricalFeature]:
    by_name = {f.name: f for f in stats.features}
    return [by_name[name] for name in stats.input_columns()]


def _quantile_edges(values: np.ndarray) -> np.ndarray:
    """Inner edges at the deciles of `values`, each once (a discrete feature has fewer)."""
    if not len(values):
        return np.zeros(0)
    probabilities = np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]
    edges: np.ndarray = np.unique(np.quantile(values.astype(np.float64), probabilities))
    return edges


def _range_labels(edges: np.ndarray) -> list[str]:
    if not len(edges):
        return ["any value"]
    shown = [f"{e:.4g}" for e in edges]
    # A value equal to an edge goes to the bin above it (`searchsorted(..., "right")`).
    inner = [f"[{a}, {b})" for a, b in itertools.pairwise(shown)]
    return [f"< {shown[0]}", *inner, f">= {shown[-1]}"]
