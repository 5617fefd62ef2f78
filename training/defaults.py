"""Hyperparameters that follow the number of training rows, wherever the user left them unset.

A small MLP on a CPU is bound by the fixed cost of each step, not by arithmetic: on a million
rows, batch 1024 with several steps per compiled call trains over ten times faster than batch 32
and reaches the same test score, given a learning rate scaled to the batch. Small data keeps the
small batches and long patience its quality was tuned with.

The rule, for `rows` training rows:
- batch size: 32 below 10,000 rows; then one doubling for each doubling of the rows
  (10,000 -> 64, 20,000 -> 128, ... ), at most 1024 (from 160,000 rows on);
- learning rate: 1e-3 x sqrt(batch / 32) (the square-root scaling rule for Adam), at most 3e-3;
- epochs: 200 below 10,000 rows; then 2,000,000 / rows, at least 10 (large data: fewer, longer
  epochs, each of which already sees many updates);
- patience: a tenth of the epochs the rule gives for these rows, between 3 and 20 (so 20
  on small data, even when the epochs are given);
- steps per compiled call: about an eighth of an epoch's steps, between 1 and 32.

Fine-tuning a parent's weights (`--warm-start`) starts near a good model, so it needs fewer
epochs and a gentler step: a fifth of the epochs above (at least 2: large data gets 10 cold, so
2 warm) and a third of the learning rate, with patience from those epochs (at least 3, as
above).
"""

from __future__ import annotations

import math

SMALL_ROWS = 10_000
SMALL_BATCH = 32
MAX_BATCH = 1024
BASE_LEARNING_RATE = 1e-3
MAX_LEARNING_RATE = 3e-3
SMALL_EPOCHS = 200
MIN_EPOCHS = 10
ROWS_SEEN = 2_000_000
"""Training rows seen over the epoch budget of large data (rows x epochs)."""
MAX_STEPS_PER_EXECUTION = 32
WARM_EPOCHS_FRACTION = 0.2
MIN_WARM_EPOCHS = 2
WARM_LEARNING_RATE_FACTOR = 1 / 3


def batch_size_for(rows: int) -> int:
    if rows < SMALL_ROWS:
        return SMALL_BATCH
    doublings = int(math.log2(rows / SMALL_ROWS)) + 1
    return min(MAX_BATCH, SMALL_BATCH << doublings)


def learning_rate_for(batch_size: int, *, warm: bool = False) -> float:
    rate = min(MAX_LEARNING_RATE, BASE_LEARNING_RATE * math.sqrt(batch_size / SMALL_BATCH))
    return rate * WARM_LEARNING_RATE_FACTOR if warm else rate


def epochs_for(rows: int, *, warm: bool = False) -> int:
    if rows < SMALL_ROWS:
        epochs = SMALL_EPOCHS
    else:
        epochs = max(MIN_EPOCHS, min(SMALL_EPOCHS, round(ROWS_SEEN / rows)))
    return max(MIN_WARM_EPOCHS, round(epochs * WARM_EPOCHS_FRACTION)) if warm else epochs


def patience_for(epochs: int) -> int:
    return max(3, min(20, epochs // 10))


def steps_per_execution_for(rows: int, batch_size: int) -> int:
    steps = math.ceil(rows / batch_size)
    return max(1, min(MAX_STEPS_PER_EXECUTION, steps // 8))
