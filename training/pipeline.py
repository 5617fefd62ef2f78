"""The training run, step by step: data, split, statistics, fit, evaluate, report, export."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.bundle import (
    METADATA_FILE,
    REPORT_DIR,
    SAVED_MODEL_DIR,
    STATS_FILE,
    ClassificationTarget,
    DataSummary,
    Evaluation,
    Metadata,
    PreprocessingStats,
    RowCounts,
    Spread,
    publish_version,
    write_json,
)
from training.cache import EncodedCache, cache_key
from training.config import Plan, TrainConfig
from training.cost import RunCost
from training.data import BUILTIN_SOURCES, DEFAULT_SOURCE, Task, load_dataset, split_dataset
from training.errors import TrainingError
from training.evaluate import (
    PRIMARY_METRIC,
    Baselines,
    baseline_outputs,
    baselines,
    evaluate,
    fit_baselines,
)
from training.memory import default_budget, gigabytes, in_memory_cost
from training.preprocess import fit_stats, model_inputs
from training.report import write_report
from training.scan import StreamSchema, StreamStats, fit_stream_stats, scan_schema
from training.sources import TEST, TRAIN, VALIDATION
from training.streaming import ShardRows

if TYPE_CHECKING:
    from training.model import TrainResult

logger = logging.getLogger(__name__)

EVALUATION_ROWS = 1_000_000
"""Streamed data: test rows scored at most (a uniform sample of them beyond)."""
LITERT_CHECK_ROWS = 10_000
"""Test rows the LiteRT conversions are compared and scored on (the first ones)."""


@dataclass(frozen=True)
class _Fitted:
    """A trained network and everything the bundle says about it, however it was trained."""

    task: Task
    features: list[str]
    target: str
    summary: DataSummary
    stats: PreprocessingStats
    result: TrainResult
    rows: RowCounts
    test_y: np.ndarray
    """Encoded targets of the test rows."""
    test_outputs: np.ndarray
    reference: dict[str, Evaluation]
    baselines: Baselines
    """The fitted baselines' timings (their scores are in `reference`)."""
    check_rows: tuple[np.ndarray, np.ndarray]
    """Test rows (inputs, targets) the LiteRT conversions are compared and scored on."""
    params: Plan
    cv_scores: dict[str, Spread] | None = None


def run(config: TrainConfig) -> Path | None:
    """Train one bundle and publish it as the next version; return its directory, or None on a
    worker of a multi-worker cluster that is not the chief (the chief publishes)."""
    if config.cv_folds and (config.streamed or config.distribute != "none"):
        raise TrainingError(
            "--cv needs the data in memory and one process: drop --stream "
            "(or the directory or glob) and --distribute"
        )
    if config.stream and str(config.data or DEFAULT_SOURCE) in BUILTIN_SOURCES:
        raise TrainingError("--stream reads files; the built-in data sets are small, drop it")
    config = _with_data_path(config)
    cost = RunCost()
    fitted = _fit_streamed(config, cost) if config.streamed else _fit_in_memory(config, cost)
    from training.distributed import is_chief

    if not is_chief():
        logger.info("not the chief of the cluster: the chief writes the bundle")
        return None
    return _publish(config, fitted, cost)


def _with_data_path(config: TrainConfig) -> TrainConfig:
    """`config`, streaming one file whose in-memory cost would pass the memory budget; the log
    says which path was taken and why."""
    source = str(config.data or DEFAULT_SOURCE)
    if config.streamed or source in BUILTIN_SOURCES or not Path(source).is_file():
        return config
    cost = in_memory_cost(Path(source))
    budget = config.memory_budget if config.memory_budget is not None else default_budget()
    fits = cost <= budget
    logger.info(
        "%s: loading it whole would take about %s, %s the memory budget of %s (--memory-budget)"
        "; %s",
        source,
        gigabytes(cost),
        "within" if fits else "over",
        gigabytes(budget),
        "reading it in memory" if fits else "streaming it instead",
    )
    if fits:
        return config
    if config.cv_folds:
        raise TrainingError(
            f"--cv needs the data in memory, and {source} is over the memory budget "
            "(raise --memory-budget, or drop --cv)"
        )
    return replace(config, stream=True)


def _plan(config: TrainConfig, train_rows: int) -> Plan:
    """The hyperparameters for this many training rows, logged with what the rule chose."""
    plan = config.params.for_rows(train_rows)
    logger.info(
        "%d training rows: batch %d, learning rate %.3g, at most %d epochs, patience %d, "
        "%d step(s) per call; set by the rule: %s",
        train_rows,
        plan.batch_size,
        plan.learning_rate,
        plan.epochs,
        plan.patience,
        plan.steps_per_execution,
        ", ".join(plan.by_rule) or "none (all given)",
    )
    return plan


def _fit_in_memory(config: TrainConfig, cost: RunCost) -> _Fitted:
    with cost.phase("read"):
        dataset = load_dataset(
            config.data, config.target, config.task, config.categorical, config.drop
        )
        split = split_dataset(dataset, config.params.seed)
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
    params = _plan(config, len(split.train))
    cv_scores = None
    if config.cv_folds:
        non_test = pd.concat([split.train, split.validation])
        if not 2 <= config.cv_folds <= len(non_test):
            raise TrainingError(
                f"--cv {config.cv_folds} must be between 2 and the {len(non_test)} rows "
                "left for training after the test split"
            )
        from training.cross_validation import cross_validate

        # Every non-test row trains the final model, for as many epochs as the folds kept.
        with cost.phase("cross_validation"):
            cv_scores, epochs = cross_validate(dataset, non_test, config, params)
        train_rows, validation_rows, params = non_test, None, replace(params, epochs=epochs)
    else:
        train_rows, validation_rows = split.train, split.validation
    with cost.phase("statistics"):
        stats = fit_stats(dataset, train_rows, config.min_category_count)
        train_xy = model_inputs(stats, train_rows)
        validation = None if validation_rows is None else model_inputs(stats, validation_rows)
        test_xy = model_inputs(stats, split.test)
    rows = RowCounts(
        train=len(train_rows),
        validation=0 if validation_rows is None else len(validation_rows),
        test=len(split.test),
    )
    task, features, target, summary = (
        dataset.task, dataset.features, dataset.target, dataset.summary
    )  # fmt: skip
    # Every row is encoded: the frames go before TensorFlow and the fit take their memory.
    del dataset, split, train_rows, validation_rows
    _release_memory()

    # TensorFlow is imported only now, so bad input is reported in well under a second.
    from training import distributed
    from training import model as network

    strategy = distributed.make_strategy(config.distribute)
    with cost.phase("fit"):
        result = _fit_arrays(
            config, strategy, stats, params, train_xy=train_xy, validation=validation
        )
    with cost.phase("evaluation"):
        test_outputs = network.network_outputs(result.model, test_xy[0])
        reference, fitted_baselines = baselines(stats, train_xy, test_xy, params.seed)
    return _Fitted(
        task=task,
        features=features,
        target=target,
        summary=summary,
        stats=stats,
        result=result,
        rows=rows,
        test_y=test_xy[1],
        test_outputs=test_outputs,
        reference=reference,
        baselines=fitted_baselines,
        check_rows=(test_xy[0][:LITERT_CHECK_ROWS], test_xy[1][:LITERT_CHECK_ROWS]),
        params=params,
        cv_scores=cv_scores,
    )


def _release_memory() -> None:
    """Hand freed memory back: Arrow's pool (which read the CSV) keeps what it freed unless
    asked, and so would the heap the frames were in."""
    import contextlib
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _fit_arrays(
    config: TrainConfig,
    strategy: object,
    stats: PreprocessingStats,
    params: Plan,
    *,
    train_xy: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
) -> TrainResult:
    """The network fitted on encoded arrays: `model.fit` on one process, else the loop."""
    from training import distributed
    from training import model as network

    if config.distribute == "none":
        return network.train(*train_xy, stats.target, params, validation=validation)
    weights = network.class_weights(train_xy[1], stats.target) if params.balance_classes else None
    return distributed.fit(
        strategy,
        distributed.TrainingRows(
            chunks=distributed.array_chunks(*train_xy),
            count=len(train_xy[1]),
            input_width=stats.input_width,
            validation=None if validation is None else lambda: iter([validation]),
            class_weights=weights,
            shuffle_buffer=config.shuffle_buffer,
        ),
        stats.target,
        params,
    )


def _fit_streamed(config: TrainConfig, cost: RunCost) -> _Fitted:
    """The same recipe on data read in chunks: two passes for the schema and statistics, the
    training loop over `tf.data`, one more pass to score the test rows."""
    seed = config.params.seed
    source = str(config.data)
    started = time.perf_counter()
    with cost.phase("read"):
        schema = scan_schema(
            source,
            config.target,
            task=config.task,
            categorical=config.categorical,
            drop=config.drop,
            seed=seed,
            chunk_rows=config.chunk_rows,
        )
    rows_read = schema.summary.rows_read
    started = _log_pass("first pass (columns, task, classes)", rows_read, started)
    with cost.phase("statistics"):
        fitted = fit_stream_stats(schema, config.min_category_count, seed, config.chunk_rows)
    started = _log_pass("second pass (statistics)", rows_read, started)
    stats, counts = fitted.stats, fitted.rows
    logger.info(
        "%s from %d shard(s) of %s, streamed: %d features (%d categorical); "
        "%d train, %d validation, %d test rows",
        schema.task,
        len(schema.shards),
        source,
        len(schema.features),
        len(schema.categorical),
        counts[TRAIN],
        counts[VALIDATION],
        counts[TEST],
    )

    params = _plan(config, counts[TRAIN])
    key = cache_key(schema.summary.sha256, stats.model_dump_json(), str(params.seed))
    cache = EncodedCache.open(config.cache_dir, key) if config.cache else None
    rows = ShardRows(schema, stats, params.seed, config.chunk_rows, cache)
    try:
        return _train_streamed(config, cost, schema, fitted, params=params, rows=rows)
    finally:
        if cache is not None:
            cache.close()


def _train_streamed(
    config: TrainConfig,
    cost: RunCost,
    schema: StreamSchema,
    fitted: StreamStats,
    *,
    params: Plan,
    rows: ShardRows,
) -> _Fitted:
    """The streamed fit and test pass, over rows read from the shards or their cache."""
    from training import distributed
    from training import model as network

    strategy = distributed.make_strategy(config.distribute)
    stats, counts = fitted.stats, fitted.rows
    rows_read = schema.summary.rows_read
    weights = None
    if params.balance_classes and fitted.class_counts is not None:
        weights = network.balanced_weights(fitted.class_counts)
    with cost.phase("fit"):
        result = distributed.fit(
            strategy,
            distributed.TrainingRows(
                chunks=lambda pipeline, pipelines: rows.encoded(
                    TRAIN, pipeline, pipelines, threads=False
                ),
                count=counts[TRAIN],
                input_width=stats.input_width,
                validation=lambda: rows.encoded(VALIDATION),
                class_weights=weights,
                shuffle_buffer=config.shuffle_buffer,
            ),
            stats.target,
            params,
        )
    with cost.phase("evaluation"):
        started = time.perf_counter()
        sample = fitted.baseline_sample
        fitted_baselines = fit_baselines(stats, *model_inputs(stats, sample), params.seed)
        models = fitted_baselines.models
        test_y: list[np.ndarray] = []
        outputs: list[np.ndarray] = []
        reference: dict[str, list[np.ndarray]] = {name: [] for name in models}
        check: tuple[np.ndarray, np.ndarray] | None = None
        # Scores from a million test rows are as exact as anyone reads them, and what scoring
        # holds (a few numbers per row) then stays bounded however large the data.
        fraction = min(1.0, EVALUATION_ROWS / counts[TEST])
        for x, y in rows.encoded(TEST, fraction=fraction):
            test_y.append(y)
            outputs.append(network.network_outputs(result.model, x))
            for name, out in baseline_outputs(stats, models, x).items():
                reference[name].append(out)
            if check is None:
                check = x[:LITERT_CHECK_ROWS], y[:LITERT_CHECK_ROWS]
        y_all = np.concatenate(test_y)
        _log_pass("test pass (network and baselines)", rows_read, started)
    return _Fitted(
        task=schema.task,
        features=schema.features,
        target=schema.target,
        summary=schema.summary,
        stats=stats,
        result=result,
        rows=RowCounts(train=counts[TRAIN], validation=counts[VALIDATION], test=counts[TEST]),
        test_y=y_all,
        test_outputs=np.concatenate(outputs),
        reference={
            name: evaluate(stats, y_all, np.concatenate(parts)) for name, parts in reference.items()
        },
        baselines=fitted_baselines,
        check_rows=check if check is not None else (np.zeros((0, stats.input_width)), y_all),
        params=params,
    )


def _log_pass(what: str, rows: int, started: float) -> float:
    """Log a pass over the data with its speed; return the time it ended."""
    now = time.perf_counter()
    logger.info(
        "%s: %d rows in %.1f s, %.0f rows/s", what, rows, now - started, rows / (now - started)
    )
    return now


def _publish(config: TrainConfig, fitted: _Fitted, cost: RunCost) -> Path:
    from training import model as network
    from training.litert import export_flatbuffers

    stats, params, result = fitted.stats, fitted.params, fitted.result
    test = evaluate(stats, fitted.test_y, fitted.test_outputs)
    primary = PRIMARY_METRIC[fitted.task]
    beats = test.metrics[primary] > fitted.reference["linear"].metrics[primary]
    model_dir = config.model_dir / config.model_name
    with publish_version(model_dir) as (scratch, version):
        with cost.phase("export"):
            network.export_saved_model(result.model, scratch / SAVED_MODEL_DIR)
            litert, litert_quantized = export_flatbuffers(
                scratch, stats, *fitted.check_rows, config.quantize
            )
            write_json(scratch / STATS_FILE, stats)
        versions = network.versions()
        metadata = Metadata(
            name=config.model_name,
            version=version,
            created_at=datetime.now(UTC),
            task=fitted.task,
            features=fitted.features,
            target=fitted.target,
            classes=stats.target.classes
            if isinstance(stats.target, ClassificationTarget)
            else None,
            primary_metric=primary,
            test=test,
            baselines=fitted.reference,
            beats_linear_baseline=beats,
            cross_validation=fitted.cv_scores,
            litert=litert,
            litert_quantized=litert_quantized,
            rows=fitted.rows,
            data=fitted.summary,
            training={
                **asdict(params),
                "by_rule": ", ".join(params.by_rule),
                "epochs_run": len(result.history["loss"]),
                "best_epoch": result.best_epoch,
                "cv_folds": config.cv_folds,
                "min_category_count": config.min_category_count,
                "task": config.task,
                "quantize": config.quantize,
                "streamed": config.streamed,
                "distribute": config.distribute,
                "test_rows_scored": len(fitted.test_y),
                **fitted.baselines.record(),
            },
            tensorflow_version=versions["tensorflow"],
            keras_version=versions["keras"],
        )
        target = stats.target
        actual_vs_predicted = (
            None
            if isinstance(target, ClassificationTarget)
            else (target.to_units(fitted.test_y), target.to_units(fitted.test_outputs))
        )
        with cost.phase("report"):
            write_report(scratch / REPORT_DIR, metadata, result.history, actual_vs_predicted)
        # Last, so that the record covers the whole run, report included.
        figures = cost.record(result.rows_per_second)
        metadata = metadata.model_copy(update={"training": {**metadata.training, **figures}})
        write_json(scratch / METADATA_FILE, metadata)
    logger.info(
        "cost: %.1f s wall, %.1f CPU-s, peak RSS %.0f MB; %s",
        figures["wall_seconds"],
        figures["cpu_seconds"],
        figures["peak_rss_mb"],
        ", ".join(
            f"{k.removeprefix('seconds_')} {v:.1f} s"
            for k, v in figures.items()
            if k.startswith("seconds_")
        ),
    )
    return model_dir / str(version)
