"""Scores in the target's own terms, for the network and for the baselines: a trivial model, a
linear one, and gradient-boosted trees (what people would pick instead for a table)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from app.bundle import ClassificationTarget, Evaluation, PreprocessingStats

# The metric that decides whether the network beats the linear baseline (higher is better).
PRIMARY_METRIC = {"regression": "r2", "classification": "f1"}
BASELINE_ROWS = 50_000
"""Training rows the baselines are fitted on at most (a uniform sample beyond): a linear model
is as good on them as on millions, and costs their memory only."""


def evaluate(stats: PreprocessingStats, y_encoded: np.ndarray, outputs: np.ndarray) -> Evaluation:
    """Score network-shaped `outputs` against encoded targets, in units or labels."""
    target = stats.target
    if not isinstance(target, ClassificationTarget):
        y_true, y_pred = target.to_units(y_encoded), target.to_units(outputs)
        mse = float(mean_squared_error(y_true, y_pred))
        return Evaluation(
            metrics={
                "mse": mse,
                "rmse": float(np.sqrt(mse)),
                "mae": float(mean_absolute_error(y_true, y_pred)),
                "r2": float(r2_score(y_true, y_pred)),
            }
        )
    k = len(target.classes)
    probabilities = target.probabilities(outputs)
    predicted = probabilities.argmax(axis=1)
    average = "binary" if k == 2 else "macro"
    scores = {
        "accuracy": accuracy_score(y_encoded, predicted),
        "precision": precision_score(y_encoded, predicted, average=average, zero_division=0),
        "recall": recall_score(y_encoded, predicted, average=average, zero_division=0),
        "f1": f1_score(y_encoded, predicted, average=average, zero_division=0),
        "log_loss": log_loss(y_encoded, probabilities, labels=range(k)),
    }
    if k == 2 and len(np.unique(y_encoded)) == 2:
        scores["roc_auc"] = roc_auc_score(y_encoded, probabilities[:, 1])
    return Evaluation(
        metrics={name: float(value) for name, value in scores.items()},
        confusion_matrix=confusion_matrix(y_encoded, predicted, labels=range(k)).tolist(),
    )


@dataclass(frozen=True)
class Baselines:
    """The fitted baselines, by name, with the seconds each took to fit and on how many rows."""

    models: dict[str, Any]
    fit_seconds: dict[str, float]
    rows: int

    def record(self) -> dict[str, float | int]:
        """For the metadata's `training` object."""
        figures: dict[str, float | int] = {
            f"seconds_fit_{name}": round(s, 3) for name, s in self.fit_seconds.items()
        }
        return {**figures, "baseline_rows": self.rows}


def baselines(
    stats: PreprocessingStats,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> tuple[dict[str, Evaluation], Baselines]:
    """The baselines fitted on the same preprocessed training rows (a sample of BASELINE_ROWS
    of them beyond that) and scored on the same test rows."""
    x, y = train
    if len(x) > BASELINE_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), BASELINE_ROWS, replace=False))
        x, y = x[keep], y[keep]
    fitted = fit_baselines(stats, x, y, seed)
    outputs = baseline_outputs(stats, fitted.models, test[0])
    return {name: evaluate(stats, test[1], out) for name, out in outputs.items()}, fitted


def fit_baselines(
    stats: PreprocessingStats, x_train: np.ndarray, y_train: np.ndarray, seed: int
) -> Baselines:
    """The trivial, linear and gradient-boosting baselines, fitted on encoded training rows."""
    if not isinstance(stats.target, ClassificationTarget):
        unfitted: dict[str, Any] = {
            "trivial": DummyRegressor(strategy="mean"),
            "linear": Ridge(alpha=1.0),
            "boosting": HistGradientBoostingRegressor(random_state=seed),
        }
    else:
        unfitted = {
            "trivial": DummyClassifier(strategy="prior"),
            "linear": LogisticRegression(max_iter=2000, random_state=seed),
            "boosting": HistGradientBoostingClassifier(random_state=seed),
        }
    models, seconds = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, model in unfitted.items():
            started = time.perf_counter()
            models[name] = model.fit(x_train, y_train)
            seconds[name] = time.perf_counter() - started
    return Baselines(models=models, fit_seconds=seconds, rows=len(x_train))


def baseline_outputs(
    stats: PreprocessingStats, models: dict[str, Any], x: np.ndarray
) -> dict[str, np.ndarray]:
    """Each baseline's predictions for encoded rows, shaped like the network's outputs."""
    target = stats.target
    if not isinstance(target, ClassificationTarget):
        return {name: model.predict(x) for name, model in models.items()}
    return {name: _as_network_outputs(model, x, target) for name, model in models.items()}


def _as_network_outputs(model: object, x: np.ndarray, target: ClassificationTarget) -> np.ndarray:
    """scikit-learn probabilities, for the classes it saw, in the network's output layout."""
    probabilities = np.zeros((len(x), len(target.classes)))
    probabilities[:, model.classes_] = model.predict_proba(x)  # type: ignore[attr-defined]
    return probabilities[:, 1:] if target.output_width == 1 else probabilities
