"""The reference the served answers must equal: the training code's preprocessing applied to
rows, then the exported SavedModel loaded with plain TensorFlow, outside the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from app.bundle import SAVED_MODEL_DIR, Decoded, read_stats
from training.data import feature_columns


def offline_predictions(version_dir: Path, rows: pd.DataFrame) -> Decoded:
    stats = read_stats(version_dir)
    x = stats.transform(feature_columns(rows, stats.feature_names))
    signature = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR)).signatures[
        "serving_default"
    ]
    outputs = next(iter(signature(tf.constant(x)).values())).numpy()
    return stats.decode(np.asarray(outputs))
