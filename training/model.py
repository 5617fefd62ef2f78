"""The network: build it, what a fit leaves, and export as a SavedModel (the loop that fits it
is `training.loop`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.bundle import ClassificationTarget, Target
from training.config import Plan

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

INPUT_NAME = "features"


@dataclass(frozen=True)
class TrainResult:
    model: Any  # keras.Model; Keras ships no type information
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    """1-based epoch whose weights were kept; 0 for a warm start's own weights, when no epoch
    beat them on the validation rows."""
    rows_per_second: list[float] = field(default_factory=list)
    """Per epoch: training rows over the seconds spent fitting them (validation excluded)."""


def seed_everything(seed: int) -> None:
    """Same data, seed and flags -> the same weights, on CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(input_width: int, target: Target, params: Plan) -> Any:
    """The reference MLP, Dense(128, relu) -> Dense(64, relu) -> head, with Adam and an L2
    penalty on the hidden layers.

    The head fits the target: one linear unit and MSE for regression, one sigmoid unit and
    binary cross-entropy for two classes, a softmax and sparse cross-entropy for more.
    """
    activation = None
    if isinstance(target, ClassificationTarget):
        activation = "sigmoid" if target.output_width == 1 else "softmax"
    penalty = keras.regularizers.l2(params.l2) if params.l2 > 0 else None
    model = keras.Sequential(
        [
            keras.Input(shape=(input_width,), name=INPUT_NAME),
            keras.layers.Dense(128, activation="relu", kernel_regularizer=penalty),
            keras.layers.Dense(64, activation="relu", kernel_regularizer=penalty),
            keras.layers.Dense(target.output_width, activation=activation),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params.learning_rate),
        loss=loss_name(target),
        steps_per_execution=params.steps_per_execution,
    )
    return model


def loss_name(target: Target) -> str:
    """The head's loss, as Keras names it."""
    if not isinstance(target, ClassificationTarget):
        return "mse"
    return "binary_crossentropy" if target.output_width == 1 else "sparse_categorical_crossentropy"


def class_weights(y: np.ndarray, target: Target) -> dict[int, float] | None:
    if not isinstance(target, ClassificationTarget):
        return None
    return balanced_weights(np.bincount(y.astype(np.int64), minlength=len(target.classes)))


def balanced_weights(counts: Sequence[int] | np.ndarray) -> dict[int, float]:
    """'Balanced' weights from rows per class, n / (classes * count): each class weighs the
    same in the loss."""
    n, k = int(np.sum(counts)), len(counts)
    return {i: n / (k * int(c)) for i, c in enumerate(counts) if c > 0}


def network_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """The network's raw outputs for encoded rows, (n, output width)."""
    return np.asarray(model(x, training=False))


def export_saved_model(model: Any, path: Path) -> None:
    """Write the SavedModel whose `serving_default` signature takes float32 [None, F]."""
    model.export(str(path), format="tf_saved_model", verbose=False)


def versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
