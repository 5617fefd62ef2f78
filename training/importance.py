"""Which features the model uses: permutation importance on the test split, through the
bundle's own runtime (the LiteRT flatbuffer when there is one, so it costs seconds)."""

from __future__ import annotations

import numpy as np

from app.bundle import FeatureImportance, PreprocessingStats, Spread
from app.model.runtime import Runtime
from training.evaluate import evaluate

REPEATS = 5


def permutation_importance(
    runtime: Runtime,
    stats: PreprocessingStats,
    rows: tuple[np.ndarray, np.ndarray],
    metric: str,
    *,
    seed: int,
) -> FeatureImportance:
    """The drop in `metric` when one feature's input columns are shuffled across the rows
    (its one-hot block moves as one), `REPEATS` times each; features in the order of the
    largest drop."""
    x, y = rows
    rng = np.random.default_rng(seed)
    base = evaluate(stats, y, runtime(x)).metrics[metric]
    drops: dict[str, Spread] = {}
    for name, columns in stats.input_columns().items():
        scores = []
        for _ in range(REPEATS):
            shuffled = x.copy()
            shuffled[:, columns] = x[rng.permutation(len(x)), columns]
            scores.append(base - evaluate(stats, y, runtime(shuffled)).metrics[metric])
        drops[name] = Spread(mean=float(np.mean(scores)), std=float(np.std(scores)))
    ranked = dict(sorted(drops.items(), key=lambda item: -item[1].mean))
    return FeatureImportance(
        metric=metric, rows=len(x), repeats=REPEATS, runtime=runtime.name, features=ranked
    )
