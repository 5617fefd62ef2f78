"""The training run, step by step: data, split, statistics, fit, evaluate, export."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from app.bundle import (
    METADATA_FILE,
    SAVED_MODEL_DIR,
    STATS_FILE,
    Metadata,
    PreprocessingStats,
    RowCounts,
    publish_version,
    write_json,
)
from training.config import TrainConfig
from training.data import features_matrix, load_dataset, split_dataset
from training.evaluate import regression_metrics

logger = logging.getLogger(__name__)


def run(config: TrainConfig) -> Path:
    """Train one bundle and publish it as the next version; return its directory."""
    dataset = load_dataset(config.data, config.target)
    params = config.params
    split = split_dataset(dataset, params.seed)
    logger.info(
        "data %s: %d features; %d train, %d validation, %d test rows",
        dataset.source,
        len(dataset.features),
        len(split.train),
        len(split.validation),
        len(split.test),
    )
    stats = PreprocessingStats.fit(
        features_matrix(split.train, dataset.features),
        split.train[dataset.target].to_numpy(),
        dataset.features,
        dataset.target,
    )

    # TensorFlow is imported only now, so bad input is reported in well under a second.
    from training import model as network

    def inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return (
            stats.transform(features_matrix(frame, dataset.features)),
            stats.scale_target(frame[dataset.target].to_numpy()),
        )

    result = network.train(*inputs(split.train), *inputs(split.validation), params)
    x_test, _ = inputs(split.test)
    predicted = stats.unscale_target(network.predict_standardised(result.model, x_test))
    metrics = regression_metrics(split.test[dataset.target].to_numpy(), predicted)
    logger.info("test metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in metrics))

    model_dir = config.model_dir / config.model_name
    with publish_version(model_dir) as (scratch, version):
        network.export_saved_model(result.model, scratch / SAVED_MODEL_DIR)
        write_json(scratch / STATS_FILE, stats)
        versions = network.versions()
        metadata = Metadata(
            name=config.model_name,
            version=version,
            created_at=datetime.now(UTC),
            features=dataset.features,
            target=dataset.target,
            metrics=metrics,
            rows=RowCounts(
                train=len(split.train),
                validation=len(split.validation),
                test=len(split.test),
                dropped_missing_target=dataset.dropped_missing_target,
            ),
            data_source=dataset.source,
            data_sha256=dataset.sha256,
            training={
                **asdict(params),
                "epochs_run": result.epochs_run,
                "best_validation_loss": result.best_validation_loss,
            },
            tensorflow_version=versions["tensorflow"],
            keras_version=versions["keras"],
        )
        write_json(scratch / METADATA_FILE, metadata)
    return model_dir / str(version)
