"""Model runtimes: run the exported network on a batch of preprocessed rows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.bundle import BundleError


class Runtime(Protocol):
    """Encoded float32 inputs (n, width) -> the network's outputs (n, output width)."""

    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class SavedModelRuntime:
    """Calls the SavedModel's `serving_default` signature: no Keras, no `model.predict`.

    `model.predict` costs tens of milliseconds of fixed overhead per call; the concrete
    signature function costs well under one. TensorFlow functions are safe to call from
    several threads at once.
    """

    name = "savedmodel"

    def __init__(self, path: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
        import tensorflow as tf  # here, not at the top: importing it takes seconds

        self._tf = tf
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # TF raises several unrelated types for a bad directory
            raise BundleError(path, f"cannot load SavedModel ({_first_line(exc)})") from None
        try:
            self._fn: Any = loaded.signatures["serving_default"]
        except KeyError:
            raise BundleError(path, "SavedModel has no 'serving_default' signature") from None
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1 or len(self._fn.structured_outputs) != 1:
            raise BundleError(path, "serving signature must have exactly one input and output")
        self._input_name = next(iter(inputs))
        self._output_name = next(iter(self._fn.structured_outputs))
        self.input_width: int | None = inputs[self._input_name].shape[-1]
        self._loaded = loaded  # keeps the signature's variables alive

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(**{self._input_name: self._tf.constant(x, dtype=self._tf.float32)})
        return np.asarray(out[self._output_name]).reshape(len(x), -1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
