"""Fitting through `tf.distribute`: one machine's devices, or several machines via TF_CONFIG.

Keras 3's `model.fit` cannot run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585:
"Attempt to convert a value (PerReplica...) to a Tensor"), so this module has its own loop:
a `tf.function` step under `strategy.run`, the per-example loss averaged over the global
batch, early stopping on the validation loss. Every worker reads the same data and keeps the
rows of its own input pipeline; an epoch is a fixed number of steps, so all workers stay in
step however the rows fall. The fitted weights go into a plain, undistributed model, which
is what the rest of training evaluates and exports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.bundle import ClassificationTarget, Target
from training.config import Plan
from training.errors import TrainingError
from training.model import TrainResult, build_model, loss_name, seed_everything

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

Distribute = Literal["none", "mirrored", "multi-worker"]
DISTRIBUTE_CHOICES: tuple[Distribute, ...] = ("none", "mirrored", "multi-worker")

Chunks = Callable[[int, int], Iterator[tuple[np.ndarray, np.ndarray]]]
"""(pipeline, pipelines) -> encoded (inputs, targets) chunks of that pipeline's rows, one pass."""


def make_strategy(kind: Distribute) -> Any:
    """The strategy for `--distribute`. Create it before any other TensorFlow work: the
    multi-worker one configures the runtime's collectives and waits for every worker."""
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            logger.warning("TF_CONFIG is not set: multi-worker training runs as a single worker")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logger.info(
        "distribute %s: %d replica(s) in sync on %s",
        kind,
        strategy.num_replicas_in_sync,
        ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU")
        or "CPU",
    )
    return strategy


def is_chief() -> bool:
    """Whether this process writes the bundle: the `chief` task, or worker 0 when the cluster
    has no chief, or the only process when there is no TF_CONFIG."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker"
        and int(task.get("index", 0)) == 0
        and "chief" not in config.get("cluster", {})
    )


@dataclass(frozen=True)
class TrainingRows:
    """What the loop reads: the training rows by input pipeline, and the validation rows."""

    chunks: Chunks
    count: int
    """Training rows over all pipelines: an epoch is this many rows, in global batches."""
    input_width: int
    validation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None
    class_weights: dict[int, float] | None = None
    shuffle_buffer: int = 10_000


def fit(strategy: Any, rows: TrainingRows, target: Target, params: Plan) -> TrainResult:
    """Fit the reference network under `strategy`; stop early on the validation loss (best
    weights kept) when there are validation rows, else run exactly `params.epochs` epochs."""
    seed_everything(params.seed)
    replicas = strategy.num_replicas_in_sync
    if params.batch_size < replicas:
        raise TrainingError(f"--batch-size {params.batch_size} is below the {replicas} replicas")
    # Rounded down so that every replica takes the same share.
    global_batch = params.batch_size - params.batch_size % replicas
    steps = math.ceil(rows.count / global_batch)
    with strategy.scope():
        model = build_model(rows.input_width, target, params)
        model.optimizer.build(model.trainable_variables)
    step = _Steps(strategy, model, target, global_batch)
    batches = iter(
        strategy.distribute_datasets_from_function(
            lambda context: _dataset(context, rows, target, global_batch, params.seed)
        )
    )
    history: dict[str, list[float]] = {"loss": []}
    speeds: list[float] = []
    best, best_loss, best_epoch, waited = None, math.inf, 0, 0
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        history["loss"].append(sum(step.train(next(batches)) for _ in range(steps)) / steps)
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
    """The compiled training step, and the validation loss every worker agrees on."""

    def __init__(self, strategy: Any, model: Any, target: Target, global_batch: int) -> None:
        self.strategy, self.model = strategy, model
        self.loss = keras.losses.get(loss_name(target))
        self.y_dtype = _y_dtype(target)
        self.column = _as_column(target)
        self.global_batch = global_batch
        self._train = tf.function(self._train_step)
        self._sums = tf.function(self._validation_sum, reduce_retracing=True)
        self._agreed = tf.function(self._mean_over_workers)

    def train(self, batch: Any) -> float:
        return float(self._train(batch))

    def validation_loss(self, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> float:
        """The mean validation loss plus the weight penalty, as Keras reports `val_loss`."""
        summed, count = 0.0, 0
        for x, y in chunks:
            summed += float(self._sums(x, y.astype(self.y_dtype.as_numpy_dtype)))
            count += len(y)
        penalty = float(sum(np.asarray(v) for v in self.model.losses))
        return float(self._agreed(tf.constant(summed / max(count, 1) + penalty, tf.float32)))

    def _train_step(self, batch: Any) -> Any:
        model, optimizer = self.model, self.model.optimizer

        def replica_step(x: Any, y: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                losses = self.loss(self.column(y), model(x, training=True)) * w
                loss = tf.nn.compute_average_loss(losses, global_batch_size=self.global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        per_replica = self.strategy.run(replica_step, args=batch)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _validation_sum(self, x: Any, y: Any) -> Any:
        return tf.reduce_sum(self.loss(self.column(y), self.model(x, training=False)))

    def _mean_over_workers(self, value: Any) -> Any:
        # Every worker computes the same loss from the same weights; averaging it over them
        # guarantees they all take the same early-stopping decision, or they would deadlock.
        per_replica = self.strategy.run(lambda: tf.identity(value))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)


def _dataset(context: Any, rows: TrainingRows, target: Target, global_batch: int, seed: int) -> Any:
    """This input pipeline's rows, shuffled in a bounded buffer, repeated, in replica batches."""
    pipeline, pipelines = context.input_pipeline_id, context.num_input_pipelines
    y_dtype = _y_dtype(target)
    weights = _weight_table(target, rows.class_weights)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for x, y in rows.chunks(pipeline, pipelines):
            w = weights[y.astype(np.int64)] if weights is not None else np.ones(len(y))
            yield x, y.astype(y_dtype.as_numpy_dtype), w.astype(np.float32)

    signature = (
        tf.TensorSpec((None, rows.input_width), tf.float32),
        tf.TensorSpec((None,), y_dtype),
        tf.TensorSpec((None,), tf.float32),
    )
    return (
        tf.data.Dataset.from_generator(generate, output_signature=signature)
        .unbatch()
        .shuffle(rows.shuffle_buffer, seed=seed + pipeline, reshuffle_each_iteration=True)
        .repeat()
        .batch(context.get_per_replica_batch_size(global_batch), drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def array_chunks(x: np.ndarray, y: np.ndarray, chunk_rows: int = 65_536) -> Chunks:
    """`Chunks` over arrays in memory; pipeline p of n takes every n-th row from row p."""

    def chunks(pipeline: int, pipelines: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        xs, ys = x[pipeline::pipelines], y[pipeline::pipelines]
        for start in range(0, len(ys), chunk_rows):
            yield xs[start : start + chunk_rows], ys[start : start + chunk_rows]

    return chunks


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
