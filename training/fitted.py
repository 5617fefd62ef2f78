"""What a fit leaves for publishing, however the rows were read, and the pieces both ways of
fitting share: the hyperparameters for the rows, and the log line of a pass."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.bundle import (
    DataSummary,
    Encoded,
    Evaluation,
    Lineage,
    PreprocessingStats,
    RowCounts,
    Spread,
)
from training.config import Plan, TrainConfig
from training.data import Task
from training.evaluate import Baselines
from training.promotion import ChampionScore

if TYPE_CHECKING:
    from training.model import TrainResult


logger = logging.getLogger(__name__)


LITERT_CHECK_ROWS = 10_000
"""Test rows the LiteRT conversions are compared and scored on (the first ones)."""


@dataclass(frozen=True)
class Fitted:
    """A trained network and everything the bundle says about it, however it was trained."""

    task: Task
    features: list[str]
    target: str
    summary: DataSummary
    stats: PreprocessingStats
    result: TrainResult
    rows: RowCounts
    test_y: np.ndarray
    """Encoded targets of the test rows."""
    test_outputs: np.ndarray
    reference: dict[str, Evaluation]
    baselines: Baselines
    """The fitted baselines' timings (their scores are in `reference`)."""
    check_rows: tuple[np.ndarray, np.ndarray]
    """Test rows (inputs, targets) the LiteRT conversions are compared and scored on."""
    params: Plan
    reference_rows: Encoded
    """Training rows (a uniform sample of at most `REFERENCE_ROWS`) the drift reference is
    counted on, encoded, with their missing cells."""
    cv_scores: dict[str, Spread] | None = None
    parent: Lineage | None = None
    """The version a warm start began from."""
    champion: ChampionScore | None = None
    """The newest published version's score on the test rows, for the promotion gate."""


def plan_for(config: TrainConfig, train_rows: int) -> Plan:
    """The hyperparameters for this many training rows, logged with what the rule chose."""
    plan = config.params.for_rows(train_rows, warm=config.warm_start is not None)
    logger.info(
        "%s%d training rows: batch %d, learning rate %.3g, at most %d epochs, patience %d, "
        "%d step(s) per call; set by the rule: %s",
        "warm start, " if config.warm_start is not None else "",
        train_rows,
        plan.batch_size,
        plan.learning_rate,
        plan.epochs,
        plan.patience,
        plan.steps_per_execution,
        ", ".join(plan.by_rule) or "none (all given)",
    )
    return plan


def log_pass(what: str, rows: int, started: float) -> float:
    """Log a pass over the data with its speed; return the time it ended."""
    now = time.perf_counter()
    logger.info(
        "%s: %d rows in %.1f s, %.0f rows/s", what, rows, now - started, rows / (now - started)
    )
    return now
