"""Fit the bundle's preprocessing statistics on training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.bundle import (
    CategoricalFeature,
    ClassificationTarget,
    Encoded,
    Feature,
    NumericFeature,
    PreprocessingStats,
    RegressionTarget,
    Target,
)
from training.data import Dataset, feature_columns


def fit_stats(dataset: Dataset, train: pd.DataFrame, min_category_count: int) -> PreprocessingStats:
    """Feature statistics and the target's scale from `train` only.

    The class list is the one exception: it comes from all usable rows, so a class that
    happens to miss the training split is still a class the model can be scored on.
    """
    features: list[Feature] = [
        CategoricalFeature.fit(name, train[name].to_numpy(), min_category_count)
        if name in dataset.categorical
        else NumericFeature.fit(name, train[name].to_numpy())
        for name in dataset.features
    ]
    target: Target
    if dataset.task == "regression":
        target = RegressionTarget.fit(dataset.target, train[dataset.target].to_numpy())
    else:
        target = ClassificationTarget.fit(dataset.target, dataset.frame[dataset.target].to_numpy())
    return PreprocessingStats(features=features, target=target)


def model_inputs(stats: PreprocessingStats, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `frame` as the network's inputs and encoded targets."""
    encoded, y = encoded_inputs(stats, frame)
    return encoded.x, y


def encoded_inputs(stats: PreprocessingStats, frame: pd.DataFrame) -> tuple[Encoded, np.ndarray]:
    """`model_inputs`, with the inputs' missing cells (what the drift reference counts)."""
    encoded = stats.encode_columns(feature_columns(frame, stats.feature_names))
    return encoded, stats.target.encode(frame[stats.target.name].to_numpy())
