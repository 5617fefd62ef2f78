"""Model runtimes: run the exported network on a batch of encoded rows, and pick one."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.bundle import (
    LITERT_FILE,
    LITERT_QUANTIZED_FILE,
    SAVED_MODEL_DIR,
    BundleError,
    Flatbuffer,
    Metadata,
)
from app.settings import RuntimeName

logger = logging.getLogger(__name__)

# `auto` serves the flatbuffer only if training measured it this close to the SavedModel.
LITERT_TOLERANCE = 1e-4


class Runtime(Protocol):
    """Encoded float32 inputs (n, width) -> the network's outputs (n, output width)."""

    name: str
    input_width: int | None
    fast: bool
    """True when a call costs microseconds: small requests may run on the event loop."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class SavedModelRuntime:
    """Calls the SavedModel's `serving_default` signature: no Keras, no `model.predict`.

    `model.predict` costs tens of milliseconds of fixed overhead per call; the concrete
    signature function well under one. TensorFlow functions are safe to call from several
    threads at once.
    """

    name = "savedmodel"
    fast = False

    def __init__(self, path: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
        try:
            import tensorflow as tf  # here, not at the top: importing it takes seconds
        except ImportError:
            raise BundleError(
                path,
                "TensorFlow is not installed (a LiteRT-only install): serve the bundle's "
                "flatbuffer with MODEL_RUNTIME=litert, or install tabserve[savedmodel]",
            ) from None

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


class _Slot:
    """One thread's interpreter and the row count its tensors are allocated for."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]["index"]
        self.output = interpreter.get_output_details()[0]["index"]
        self.rows = -1


class LiteRTRuntime:
    """Runs a LiteRT (TFLite) flatbuffer with `ai-edge-litert`; TensorFlow is never imported.

    An interpreter is not thread-safe, so each thread that calls gets its own, created once
    from the flatbuffer held in memory; a call never allocates an interpreter after that.
    """

    fast = True

    def __init__(self, path: Path, name: str = "litert") -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BundleError(path, "the ai-edge-litert package is not installed") from None
        self.name = name
        self._new = Interpreter
        try:
            self._flatbuffer = path.read_bytes()
        except OSError as exc:
            raise BundleError(path, f"cannot read the flatbuffer ({exc.strerror})") from None
        self._local = threading.local()
        try:
            first = self._slot()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(path, f"not a valid LiteRT flatbuffer ({_first_line(exc)})") from None
        signature = first.interpreter.get_input_details()[0]["shape_signature"]
        self.input_width: int | None = int(signature[-1])

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot(
                self._new(model_content=self._flatbuffer, num_threads=1)
            )
        return slot

    def __call__(self, x: np.ndarray) -> np.ndarray:
        slot = self._slot()
        interpreter = slot.interpreter
        if slot.rows != len(x):
            interpreter.resize_tensor_input(slot.input, [len(x), x.shape[1]])
            interpreter.allocate_tensors()
            slot.rows = len(x)
        interpreter.set_tensor(slot.input, np.ascontiguousarray(x, dtype=np.float32))
        interpreter.invoke()
        out: np.ndarray = interpreter.get_tensor(slot.output)  # a copy, safe to keep
        return out.reshape(len(x), -1)


def open_runtime(requested: RuntimeName, version_dir: Path, metadata: Metadata) -> Runtime:
    """The runtime `requested`, or for `auto` the flatbuffer when it is there, close enough
    to the SavedModel and runnable here, else the SavedModel."""
    if requested == "savedmodel":
        return _saved_model(version_dir)
    if requested == "litert-quantized":
        return _flatbuffer(version_dir, metadata.litert_quantized, LITERT_QUANTIZED_FILE, requested)
    if requested == "litert":
        return _flatbuffer(version_dir, metadata.litert, LITERT_FILE, requested)
    flatbuffer = metadata.litert
    if flatbuffer is None:
        logger.info("runtime auto: the bundle has no LiteRT flatbuffer; using the SavedModel")
    elif flatbuffer.max_abs_diff > LITERT_TOLERANCE:
        logger.warning(
            "runtime auto: the flatbuffer differs from the SavedModel by %.3g (> %g); "
            "using the SavedModel",
            flatbuffer.max_abs_diff,
            LITERT_TOLERANCE,
        )
    else:
        try:
            return _flatbuffer(version_dir, flatbuffer, LITERT_FILE, "litert")
        except BundleError as exc:
            logger.warning("runtime auto: %s; using the SavedModel", exc)
    return _saved_model(version_dir)


def _saved_model(version_dir: Path) -> SavedModelRuntime:
    path = version_dir / SAVED_MODEL_DIR
    if not path.is_dir():
        raise BundleError(path, "SavedModel directory is missing")
    return SavedModelRuntime(path)


def _flatbuffer(
    version_dir: Path, recorded: Flatbuffer | None, default_file: str, name: str
) -> LiteRTRuntime:
    if recorded is None:
        raise BundleError(
            version_dir / default_file,
            f"the bundle has no {name} flatbuffer (MODEL_RUNTIME=savedmodel serves it)",
        )
    return LiteRTRuntime(version_dir / recorded.file, name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
