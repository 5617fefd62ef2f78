"""The one training loop: how rows become shuffled batches, and several steps per call."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from app.bundle import RegressionTarget
from training.config import Hyperparameters
from training.errors import TrainingError
from training.loop import array_chunks, shuffled_batches


def _rows(n: int, chunk: int, passes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    ids = np.arange(n)
    for _ in range(passes):
        yield from array_chunks(ids[:, None].astype(np.float32), ids, chunk)(0, 1)


@pytest.mark.parametrize(
    ("n", "chunk", "pool", "batch"), [(1000, 1000, 1, 64), (1000, 96, 250, 50)]
)
def test_every_row_is_seen_once_per_pass_in_full_batches(
    n: int, chunk: int, pool: int, batch: int
) -> None:
    passes = 3
    batches = list(shuffled_batches(_rows(n, chunk, passes), batch, pool, seed=0))
    assert all(len(y) == batch for _, y in batches)
    seen = np.concatenate([y for _, y in batches])
    # Rows left over carry into the next pool: only the last partial batch is unsent.
    assert len(seen) == n * passes // batch * batch
    counts = np.bincount(seen, minlength=n)
    assert counts.max() <= passes
    assert (counts >= passes - 1).all()
    for x, y in batches:  # inputs and targets stay paired
        np.testing.assert_array_equal(x[:, 0], y)


def test_a_pass_in_one_chunk_is_shuffled_whole_and_differently_each_epoch() -> None:
    n, batch = 1000, 100
    batches = list(shuffled_batches(_rows(n, n, 2), batch, 1, seed=1))
    first = np.concatenate([y for _, y in batches[:10]])
    second = np.concatenate([y for _, y in batches[10:]])
    assert sorted(first) == list(range(n)) == sorted(second)
    assert not np.array_equal(first, second)
    # Rows from the end of the file reach the first batches: not a windowed shuffle.
    assert np.concatenate([y for _, y in batches[:2]]).max() > n // 2


def test_the_same_seed_gives_the_same_batches() -> None:
    def take(seed: int) -> list[np.ndarray]:
        return [
            y for _, y in itertools.islice(shuffled_batches(_rows(500, 70, 4), 32, 100, seed), 40)
        ]

    assert all(np.array_equal(a, b) for a, b in zip(take(5), take(5), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(take(5), take(6), strict=True))


def test_steps_per_call_do_not_change_what_is_learned() -> None:
    """Several steps per compiled call is a speed choice only: the same weights as one step
    per call, on the same batches."""
    import tensorflow as tf

    from training.loop import fit_arrays

    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 2.0])).astype(np.float32)
    target = RegressionTarget(name="y", mean=0.0, std=1.0)
    fits = [
        fit_arrays(
            tf.distribute.get_strategy(),
            (x[:600], y[:600]),
            target,
            replace(
                Hyperparameters(epochs=3, batch_size=32, seed=2).for_rows(600),
                steps_per_execution=per_call,
            ),
            validation=(x[600:], y[600:]),
        )
        for per_call in (1, 7)
    ]
    assert fits[0].history["loss"][-1] < fits[0].history["loss"][0]
    assert fits[0].history["val_loss"] == pytest.approx(fits[1].history["val_loss"], rel=1e-5)
    for a, b in zip(fits[0].model.get_weights(), fits[1].model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_input_pipeline_without_rows_is_an_error_not_a_hang() -> None:
    import tensorflow as tf

    from training.loop import TrainingRows, fit

    def nothing(pipeline: int, pipelines: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter([(np.zeros((0, 2), np.float32), np.zeros(0, np.float32))])

    rows = TrainingRows(chunks=nothing, count=10, input_width=2)
    target = RegressionTarget(name="y", mean=0.0, std=1.0)
    with pytest.raises(TrainingError, match="an input pipeline has no training rows"):
        fit(tf.distribute.get_strategy(), rows, target, Hyperparameters(epochs=1).for_rows(10))
