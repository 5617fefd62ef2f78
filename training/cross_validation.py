"""k-fold cross-validation of the whole recipe: statistics, network and early stopping per fold."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from app.bundle import Evaluation, Spread, category_key
from training.config import Plan, TrainConfig
from training.data import VALIDATION_FRACTION, Dataset, split_rows
from training.evaluate import evaluate
from training.preprocess import fit_stats, model_inputs

logger = logging.getLogger(__name__)


def cross_validate(
    dataset: Dataset, rows: pd.DataFrame, config: TrainConfig, params: Plan
) -> tuple[dict[str, Spread], int]:
    """Score `config.cv_folds` folds of `rows`; return each metric's mean and standard deviation
    and the median epoch early stopping kept, for training the final model on all rows."""
    import tensorflow as tf

    from training import loop
    from training import model as network

    k = config.cv_folds
    labels = rows[dataset.target].map(category_key)
    stratified = dataset.task == "classification" and labels.value_counts().min() >= k
    splitter = (StratifiedKFold if stratified else KFold)(k, shuffle=True, random_state=params.seed)
    evaluations: list[Evaluation] = []
    kept_epochs: list[int] = []
    for fold, (fit_at, held_at) in enumerate(splitter.split(rows, labels), start=1):
        fit_rows, held = rows.iloc[fit_at], rows.iloc[held_at]
        train, validation = split_rows(dataset, fit_rows, VALIDATION_FRACTION, params.seed)
        stats = fit_stats(dataset, train, config.min_category_count)
        result = loop.fit_arrays(
            tf.distribute.get_strategy(),
            model_inputs(stats, train),
            stats.target,
            params,
            validation=model_inputs(stats, validation),
        )
        x_held, y_held = model_inputs(stats, held)
        evaluation = evaluate(stats, y_held, network.network_outputs(result.model, x_held))
        evaluations.append(evaluation)
        kept_epochs.append(result.best_epoch)
        scores = ", ".join(f"{m} {v:.4g}" for m, v in evaluation.metrics.items())
        logger.info("fold %d/%d: %s (epoch %d kept)", fold, k, scores, result.best_epoch)
    common = set.intersection(*(set(e.metrics) for e in evaluations))
    spreads = {
        metric: Spread(
            mean=float(np.mean([e.metrics[metric] for e in evaluations])),
            std=float(np.std([e.metrics[metric] for e in evaluations])),
        )
        for metric in sorted(common)
    }
    return spreads, int(np.median(kept_epochs))
