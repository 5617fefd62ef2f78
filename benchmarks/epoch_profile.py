"""`python -m benchmarks.epoch_profile`: where one epoch of the training loop spends its time.

On generated arrays (640,000 rows of 22 inputs by default, the size of the training
benchmark's training split), at the batch and steps per call the defaults choose, it times in
one process: making the epoch's shuffled batches in numpy, the compiled training steps alone on
one batch already in memory, and `training.loop.fit_arrays` itself (epochs after the first,
which traces). What the loop costs beyond the steps is the input pipeline.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from benchmarks.options import positive_int

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.epoch_profile", description=__doc__)
    p.add_argument("--rows", type=positive_int, default=640_000, help="training rows (640,000)")
    p.add_argument("--width", type=positive_int, default=22, help="model inputs (22)")
    p.add_argument("--epochs", type=positive_int, default=4, help="epochs of the loop (4)")
    args = p.parse_args(argv)

    import tensorflow as tf

    from app.bundle import RegressionTarget
    from training import loop
    from training.config import Hyperparameters
    from training.model import build_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.width)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    target = RegressionTarget(name="y", mean=0.0, std=1.0)
    plan = Hyperparameters(epochs=args.epochs, patience=args.epochs).for_rows(args.rows)
    steps = -(-args.rows // plan.batch_size)

    def passes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield x, y

    batches = loop.shuffled_batches(passes(), plan.batch_size, 1, 0)
    numpy_s = _median_of(3, lambda: list(itertools.islice(batches, steps)))

    model = build_model(args.width, target, plan)
    xb, yb = tf.constant(x[: plan.batch_size]), tf.constant(y[: plan.batch_size, None])
    mse = tf.keras.losses.MeanSquaredError()

    @tf.function  # type: ignore[untyped-decorator]
    def run_steps(count: Any) -> Any:
        for _ in tf.range(count):
            with tf.GradientTape() as tape:
                loss = mse(yb, model(xb, training=True)) + tf.add_n(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    per_call = plan.steps_per_execution
    run_steps(tf.constant(per_call))  # trace

    def epoch_of_steps() -> None:
        for done in range(0, steps, per_call):
            run_steps(tf.constant(min(per_call, steps - done)))

    steps_s = _median_of(3, epoch_of_steps)
    result = loop.fit_arrays(tf.distribute.get_strategy(), (x, y), target, plan)
    loop_s = args.rows / statistics.median(result.rows_per_second[1:] or result.rows_per_second)

    print(
        f"{args.rows:,} rows of {args.width} inputs, batch {plan.batch_size}, "
        f"{per_call} steps per call, {steps} steps an epoch"
    )
    print(f"  batches made in numpy      {numpy_s:7.3f} s")
    print(f"  compiled steps alone       {steps_s:7.3f} s")
    print(f"  the loop, one epoch        {loop_s:7.3f} s  ({args.rows / loop_s:,.0f} rows/s)")
    print(f"  the loop beyond the steps  {loop_s - steps_s:7.3f} s")
    return 0


def _median_of(times: int, work: Any) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


if __name__ == "__main__":
    raise SystemExit(main())
