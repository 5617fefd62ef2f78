"""Convert the SavedModel to LiteRT flatbuffers and measure how far they are from it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from app.bundle import (
    LITERT_FILE,
    LITERT_QUANTIZED_FILE,
    SAVED_MODEL_DIR,
    Flatbuffer,
    PreprocessingStats,
)
from training.evaluate import evaluate

logger = logging.getLogger(__name__)


def export_flatbuffers(
    version_dir: Path,
    stats: PreprocessingStats,
    x_test: np.ndarray,
    y_test: np.ndarray,
    quantize: bool,
) -> tuple[Flatbuffer | None, Flatbuffer | None]:
    """Write `model.tflite` (and with `quantize`, a dynamic-range quantised one) beside the
    SavedModel, each with its largest output difference from the SavedModel on the test rows.

    A conversion that fails is logged and left out: the SavedModel stays the canonical model.
    """
    saved_model = version_dir / SAVED_MODEL_DIR
    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    reference = np.asarray(next(iter(signature(tf.constant(x_test)).values())))
    written: list[Flatbuffer | None] = []
    for file, quantized in ((LITERT_FILE, False), (LITERT_QUANTIZED_FILE, True)):
        if quantized and not quantize:
            written.append(None)
            continue
        try:
            content = _convert(saved_model, quantized)
            outputs = run_flatbuffer(content, x_test)
        except Exception as exc:  # the converter raises many types; the bundle is fine without
            logger.warning("LiteRT conversion (%s) failed, left out: %s", file, exc)
            written.append(None)
            continue
        (version_dir / file).write_bytes(content)
        flatbuffer = Flatbuffer(
            file=file,
            size_bytes=len(content),
            max_abs_diff=float(np.max(np.abs(outputs - reference))),
            test=evaluate(stats, y_test, outputs) if quantized else None,
        )
        logger.info(
            "%s: %d bytes, largest difference from the SavedModel %.3g",
            file,
            flatbuffer.size_bytes,
            flatbuffer.max_abs_diff,
        )
        written.append(flatbuffer)
    return written[0], written[1]


def _convert(saved_model: Path, quantized: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantized:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range: int8 weights
    content: bytes = converter.convert()
    return content


def run_flatbuffer(content: bytes, x: np.ndarray) -> np.ndarray:
    """The flatbuffer's outputs for rows `x`, with the interpreter serving uses."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, np.ascontiguousarray(x, dtype=np.float32))
    interpreter.invoke()
    out: np.ndarray = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return out
