"""The network: build, train with early stopping, export as a SavedModel."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import Hyperparameters

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

INPUT_NAME = "features"


@dataclass(frozen=True)
class TrainResult:
    model: Any  # keras.Model; Keras ships no type information
    epochs_run: int
    best_validation_loss: float


def seed_everything(seed: int) -> None:
    """Same data, seed and flags -> the same weights, on CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(n_features: int, learning_rate: float) -> Any:
    """The reference MLP: Dense(128, relu) -> Dense(64, relu) -> Dense(1), Adam, MSE."""
    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,), name=INPUT_NAME),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    params: Hyperparameters,
) -> TrainResult:
    """Fit on standardised arrays; stop when validation loss stops improving, keep the best."""
    seed_everything(params.seed)
    model = build_model(x_train.shape[1], params.learning_rate)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.patience, restore_best_weights=True
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=params.epochs,
        batch_size=params.batch_size,
        callbacks=[stop],
        verbose=0,
    )
    losses = history.history["val_loss"]
    best = float(np.min(losses))
    logger.info("trained %d epochs; best validation loss %.4f", len(losses), best)
    return TrainResult(model=model, epochs_run=len(losses), best_validation_loss=best)


def predict_standardised(model: Any, x: np.ndarray) -> np.ndarray:
    """The network's outputs for standardised rows, shape (n,)."""
    return np.asarray(model(x, training=False)).reshape(len(x))


def export_saved_model(model: Any, path: Path) -> None:
    """Write the SavedModel whose `serving_default` signature takes float32 [None, F]."""
    model.export(str(path), format="tf_saved_model", verbose=False)


def versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
