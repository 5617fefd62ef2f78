"""The training run, step by step: data, split, statistics, fit, evaluate, report, export."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from app.bundle import (
    METADATA_FILE,
    REPORT_DIR,
    SAVED_MODEL_DIR,
    STATS_FILE,
    ClassificationTarget,
    Metadata,
    RowCounts,
    publish_version,
    write_json,
)
from training.config import TrainConfig
from training.data import load_dataset, split_dataset
from training.errors import TrainingError
from training.evaluate import PRIMARY_METRIC, baselines, evaluate
from training.preprocess import fit_stats, model_inputs
from training.report import write_report

logger = logging.getLogger(__name__)


def run(config: TrainConfig) -> Path:
    """Train one bundle and publish it as the next version; return its directory."""
    dataset = load_dataset(config.data, config.target, config.task, config.categorical, config.drop)
    params = config.params
    split = split_dataset(dataset, params.seed)
    logger.info(
        "%s from %s: %d features (%d categorical); %d train, %d validation, %d test rows",
        dataset.task,
        dataset.summary.source,
        len(dataset.features),
        len(dataset.categorical),
        len(split.train),
        len(split.validation),
        len(split.test),
    )
    non_test = pd.concat([split.train, split.validation])
    if config.cv_folds and not 2 <= config.cv_folds <= len(non_test):
        raise TrainingError(
            f"--cv {config.cv_folds} must be between 2 and the {len(non_test)} rows "
            "left for training after the test split"
        )

    # TensorFlow is imported only now, so bad input is reported in well under a second.
    from training import model as network
    from training.cross_validation import cross_validate
    from training.litert import export_flatbuffers

    cv_scores = None
    if config.cv_folds:
        # Every non-test row trains the final model, for as many epochs as the folds kept.
        cv_scores, epochs = cross_validate(dataset, non_test, config)
        train_rows, validation_rows, params = non_test, None, replace(params, epochs=epochs)
    else:
        train_rows, validation_rows = split.train, split.validation
    stats = fit_stats(dataset, train_rows, config.min_category_count)
    train_xy = model_inputs(stats, dataset, train_rows)
    result = network.train(
        *train_xy,
        stats.target,
        params,
        validation=None
        if validation_rows is None
        else model_inputs(stats, dataset, validation_rows),
    )
    test_xy = model_inputs(stats, dataset, split.test)
    test_outputs = network.network_outputs(result.model, test_xy[0])
    test = evaluate(stats, test_xy[1], test_outputs)
    reference = baselines(stats, train_xy, test_xy, params.seed)
    primary = PRIMARY_METRIC[dataset.task]
    beats = test.metrics[primary] > reference["linear"].metrics[primary]

    model_dir = config.model_dir / config.model_name
    with publish_version(model_dir) as (scratch, version):
        network.export_saved_model(result.model, scratch / SAVED_MODEL_DIR)
        litert, litert_quantized = export_flatbuffers(scratch, stats, *test_xy, config.quantize)
        write_json(scratch / STATS_FILE, stats)
        versions = network.versions()
        metadata = Metadata(
            name=config.model_name,
            version=version,
            created_at=datetime.now(UTC),
            task=dataset.task,
            features=dataset.features,
            target=dataset.target,
            classes=stats.target.classes
            if isinstance(stats.target, ClassificationTarget)
            else None,
            primary_metric=primary,
            test=test,
            baselines=reference,
            beats_linear_baseline=beats,
            cross_validation=cv_scores,
            litert=litert,
            litert_quantized=litert_quantized,
            rows=RowCounts(
                train=len(train_rows),
                validation=0 if validation_rows is None else len(validation_rows),
                test=len(split.test),
            ),
            data=dataset.summary,
            training={
                **asdict(params),
                "epochs_run": len(result.history["loss"]),
                "best_epoch": result.best_epoch,
                "cv_folds": config.cv_folds,
                "min_category_count": config.min_category_count,
                "task": config.task,
                "quantize": config.quantize,
            },
            tensorflow_version=versions["tensorflow"],
            keras_version=versions["keras"],
        )
        write_json(scratch / METADATA_FILE, metadata)
        actual_vs_predicted = (
            None
            if dataset.task == "classification"
            else (split.test[dataset.target].to_numpy(), stats.decode(test_outputs).values)
        )
        write_report(scratch / REPORT_DIR, metadata, result.history, actual_vs_predicted)
    return model_dir / str(version)
