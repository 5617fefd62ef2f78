"""Test-split metrics in the target's real units."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from app.bundle import Metrics


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> Metrics:
    mse = float(mean_squared_error(y_true, y_pred))
    return Metrics(
        mse=mse,
        rmse=float(np.sqrt(mse)),
        mae=float(mean_absolute_error(y_true, y_pred)),
        r2=float(r2_score(y_true, y_pred)),
    )
