"""The one training loop: data in memory, streamed, or spread over devices and workers.

Keras 3's `model.fit` cannot run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585:
"Attempt to convert a value (PerReplica...) to a Tensor"), so every fit goes through this loop:
a compiled call that runs `steps_per_execution` steps under `strategy.run` (the per-example loss
averaged over the global batch), early stopping on the validation loss with the best weights
kept. The default strategy makes it an ordinary single-process fit.

Rows reach the loop as numpy batches that are already shuffled: each input pipeline pools its
rows (all of them for arrays in memory, `shuffle_buffer` rows at a time when streamed), permutes
the pool and cuts it into batches. Shuffling a pool in numpy costs one gather per batch, where
`tf.data`'s row-by-row `unbatch().shuffle()` capped a streamed epoch at under 200,000 rows/s.
An epoch is a fixed number of steps and the rows flow on across epochs, so all workers stay in
step however the rows fall. The fitted weights go into a plain, undistributed model, which is
what the rest of training evaluates and exports.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.bundle import ClassificationTarget, Target
from training.config import Plan
from training.errors import TrainingError
from training.model import TrainResult, build_model, class_weights, loss_name, seed_everything

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

Rows = Iterator[tuple[np.ndarray, np.ndarray]]
Chunks = Callable[[int, int], Rows]
"""(pipeline, pipelines) -> encoded (inputs, targets) chunks of that pipeline's rows, one pass."""

VALIDATION_CHUNK_ROWS = 65_536
BATCHES_PER_YIELD = 32
"""Batches handed to `tf.data` per call into Python: each call costs about half a
millisecond, as much as a training step of 1,024 rows on this network."""


@dataclass(frozen=True)
class TrainingRows:
    """What the loop reads: the training rows by input pipeline, and the validation rows."""

    chunks: Chunks
    count: int
    """Training rows over all pipelines: an epoch is this many rows, in global batches."""
    input_width: int
    validation: Callable[[], Rows] | None = None
    class_weights: dict[int, float] | None = None
    shuffle_buffer: int = 10_000
    """Rows pooled and permuted together; a pass in one chunk is shuffled whole."""


def array_chunks(x: np.ndarray, y: np.ndarray, chunk_rows: int | None = None) -> Chunks:
    """`Chunks` over arrays in memory; pipeline p of n takes every n-th row from row p. Without
    `chunk_rows` a pass is one chunk (views, not copies), so each epoch is a full shuffle."""

    def chunks(pipeline: int, pipelines: int) -> Rows:
        xs, ys = x[pipeline::pipelines], y[pipeline::pipelines]
        step = chunk_rows or max(len(ys), 1)
        for start in range(0, len(ys), step):
            yield xs[start : start + step], ys[start : start + step]

    return chunks


def fit_arrays(
    strategy: Any,
    train: tuple[np.ndarray, np.ndarray],
    target: Target,
    params: Plan,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    initial: Callable[[Sequence[Any]], list[np.ndarray]] | None = None,
) -> TrainResult:
    """`fit` on encoded arrays in memory, each epoch a full shuffle of the training rows."""
    x, y = train
    weights = class_weights(y, target) if params.balance_classes else None
    rows = TrainingRows(
        chunks=array_chunks(x, y),
        count=len(y),
        input_width=x.shape[1],
        validation=None
        if validation is None
        else lambda: array_chunks(*validation, VALIDATION_CHUNK_ROWS)(0, 1),
        class_weights=weights,
        shuffle_buffer=1,  # a pass is one chunk, so one pool: all the rows
    )
    return fit(strategy, rows, target, params, initial)


def fit(
    strategy: Any,
    rows: TrainingRows,
    target: Target,
    params: Plan,
    initial: Callable[[Sequence[Any]], list[np.ndarray]] | None = None,
) -> TrainResult:
    """Fit the reference network under `strategy`; stop early on the validation loss (best
    weights kept) when there are validation rows, else run exactly `params.epochs` epochs.

    `initial`, given the new network's weights, returns the weights to start from (a warm
    start); the starting weights then count as epoch 0, kept if no epoch beats them."""
    seed_everything(params.seed)
    replicas = strategy.num_replicas_in_sync
    if params.batch_size < replicas:
        raise TrainingError(f"--batch-size {params.batch_size} is below the {replicas} replicas")
    # Rounded down so that every replica takes the same share.
    global_batch = params.batch_size - params.batch_size % replicas
    steps = math.ceil(rows.count / global_batch)
    per_call = max(1, min(params.steps_per_execution, steps))
    with strategy.scope():
        model = build_model(rows.input_width, target, params)
        model.optimizer.build(model.trainable_variables)
        if initial is not None:
            model.set_weights(initial(model.get_weights()))
    step = _Steps(strategy, model, target, global_batch)
    batches = iter(
        strategy.distribute_datasets_from_function(
            lambda context: _dataset(context, rows, target, global_batch, params.seed)
        )
    )
    history: dict[str, list[float]] = {"loss": []}
    speeds: list[float] = []
    best, best_loss, best_epoch, waited = None, math.inf, 0, 0
    if initial is not None and rows.validation is not None:
        best, best_loss = model.get_weights(), step.validation_loss(rows.validation())
        logger.info("epoch 0 (the parent's weights): val_loss %.4f", best_loss)
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        try:
            summed = sum(
                step.train(batches, min(per_call, steps - done))
                for done in range(0, steps, per_call)
            )
        except tf.errors.OutOfRangeError:
            raise TrainingError(
                f"an input pipeline has no training rows "
                f"({rows.count} rows over {strategy.num_replicas_in_sync} replica(s))"
            ) from None
        history["loss"].append(summed / steps)
        speed = rows.count / (time.perf_counter() - started)
        speeds.append(speed)
        scores = f"loss {history['loss'][-1]:.4f}"
        if rows.validation is not None:
            loss = step.validation_loss(rows.validation())
            history.setdefault("val_loss", []).append(loss)
            scores += f", val_loss {loss:.4f}"
            if loss < best_loss:
                best, best_loss, best_epoch, waited = model.get_weights(), loss, epoch, 0
            else:
                waited += 1
        logger.info(
            "epoch %d/%d (%d steps, %.0f training rows/s): %s",
            epoch,
            params.epochs,
            steps,
            speed,
            scores,
        )
        if rows.validation is not None and waited >= params.patience:
            break
    if best is None:
        best, best_epoch = model.get_weights(), len(history["loss"])
    # The digest lets the workers' logs show that they all ended with the same weights.
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in best)).hexdigest()
    logger.info(
        "trained %d epochs; kept epoch %d (weights sha256 %s)",
        len(history["loss"]),
        best_epoch,
        digest[:16],
    )
    final = build_model(rows.input_width, target, params)
    final.set_weights(best)
    return TrainResult(model=final, history=history, best_epoch=best_epoch, rows_per_second=speeds)


class _Steps:
    """The compiled training steps, and the validation loss every worker agrees on."""

    def __init__(self, strategy: Any, model: Any, target: Target, global_batch: int) -> None:
        self.strategy, self.model = strategy, model
        self.loss = keras.losses.get(loss_name(target))
        self.y_dtype = _y_dtype(target)
        self.column = _as_column(target)
        self.global_batch = global_batch
        self._train = tf.function(self._train_steps)
        self._sums = tf.function(self._validation_sum, reduce_retracing=True)
        self._agreed = tf.function(self._mean_over_workers)

    def train(self, batches: Any, count: int) -> float:
        """Run `count` steps in one compiled call; the sum of their losses."""
        return float(self._train(batches, tf.constant(count, tf.int32)))

    def validation_loss(self, chunks: Rows) -> float:
        """The mean validation loss plus the weight penalty, as Keras reports `val_loss`."""
        summed, count = 0.0, 0
        for x, y in chunks:
            summed += float(self._sums(x, y.astype(self.y_dtype.as_numpy_dtype)))
            count += len(y)
        penalty = float(sum(np.asarray(v) for v in self.model.losses))
        return float(self._agreed(tf.constant(summed / max(count, 1) + penalty, tf.float32)))

    def _train_steps(self, batches: Any, count: Any) -> Any:
        total = tf.constant(0.0)
        for _ in tf.range(count):
            per_replica = self.strategy.run(self._replica_step, args=next(batches))
            total += self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return total

    def _replica_step(self, x: Any, y: Any, w: Any) -> Any:
        model = self.model
        with tf.GradientTape() as tape:
            losses = self.loss(self.column(y), model(x, training=True)) * w
            loss = tf.nn.compute_average_loss(losses, global_batch_size=self.global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    def _validation_sum(self, x: Any, y: Any) -> Any:
        return tf.reduce_sum(self.loss(self.column(y), self.model(x, training=False)))

    def _mean_over_workers(self, value: Any) -> Any:
        # Every worker computes the same loss from the same weights; averaging it over them
        # guarantees they all take the same early-stopping decision, or they would deadlock.
        per_replica = self.strategy.run(lambda: tf.identity(value))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)


def _dataset(context: Any, rows: TrainingRows, target: Target, global_batch: int, seed: int) -> Any:
    """This input pipeline's rows as shuffled replica batches, without end."""
    pipeline, pipelines = context.input_pipeline_id, context.num_input_pipelines
    batch = context.get_per_replica_batch_size(global_batch)
    y_dtype = _y_dtype(target)
    weights = _weight_table(target, rows.class_weights)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        passes = _passes(lambda: rows.chunks(pipeline, pipelines))
        shuffled = shuffled_batches(passes, batch, rows.shuffle_buffer, seed + pipeline)
        while group := list(itertools.islice(shuffled, BATCHES_PER_YIELD)):
            x, y = np.stack([x for x, _ in group]), np.stack([y for _, y in group])
            w = weights[y.astype(np.int64)] if weights is not None else np.ones(y.shape)
            yield x, y.astype(y_dtype.as_numpy_dtype), w.astype(np.float32)

    signature = (
        tf.TensorSpec((None, batch, rows.input_width), tf.float32),
        tf.TensorSpec((None, batch), y_dtype),
        tf.TensorSpec((None, batch), tf.float32),
    )
    return (
        tf.data.Dataset.from_generator(generate, output_signature=signature)
        .unbatch()
        .prefetch(tf.data.AUTOTUNE)
    )


def _passes(one_pass: Callable[[], Rows]) -> Rows:
    """Pass after pass over the pipeline's rows; they end only if a pass finds none."""
    while True:
        seen = False
        for x, y in one_pass():
            seen = seen or len(y) > 0
            yield x, y
        if not seen:
            return


def shuffled_batches(rows: Rows, batch: int, pool_rows: int, seed: int) -> Rows:
    """Full batches of `rows`, permuted within pools of at least `pool_rows` rows (a chunk at
    least that long is a pool by itself, shuffled without a copy). Rows left over from one pool
    open the next, so none is dropped."""
    rng = np.random.default_rng(seed)
    carry: tuple[np.ndarray, np.ndarray] | None = None
    for x, y in _pools(rows, pool_rows):
        order = rng.permutation(len(y))
        start = 0
        if carry is not None:
            start = batch - len(carry[1])
            head = order[:start]
            carry = (np.concatenate([carry[0], x[head]]), np.concatenate([carry[1], y[head]]))
            if len(carry[1]) < batch:  # this pool did not fill the batch: keep gathering
                continue
            yield carry
            carry = None
        end = start + (len(order) - start) // batch * batch
        for at in range(start, end, batch):
            taken = order[at : at + batch]
            yield x[taken], y[taken]
        if end < len(order):
            rest = order[end:]
            carry = (x[rest], y[rest])


def _pools(rows: Rows, pool_rows: int) -> Rows:
    pool: list[tuple[np.ndarray, np.ndarray]] = []
    pooled = 0
    for chunk in rows:
        pool.append(chunk)
        pooled += len(chunk[1])
        if pooled >= pool_rows:
            yield _joined(pool)
            pool, pooled = [], 0
    if pool:
        yield _joined(pool)


def _joined(pool: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(pool) == 1:
        return pool[0]
    return np.concatenate([x for x, _ in pool]), np.concatenate([y for _, y in pool])


def _y_dtype(target: Target) -> Any:
    """Class indices for a softmax head; floats for one output unit."""
    multiclass = isinstance(target, ClassificationTarget) and target.output_width > 1
    return tf.int64 if multiclass else tf.float32


def _as_column(target: Target) -> Callable[[Any], Any]:
    """Targets as the loss takes them: (n, 1) for one output unit, (n,) class indices else."""
    if target.output_width == 1:
        return lambda y: tf.reshape(y, (-1, 1))
    return lambda y: y


def _weight_table(target: Target, class_weights: dict[int, float] | None) -> np.ndarray | None:
    if class_weights is None or not isinstance(target, ClassificationTarget):
        return None
    table = np.ones(len(target.classes))
    for index, weight in class_weights.items():
        table[index] = weight
    return table
