"""The training run, step by step: data, split, statistics, fit, evaluate, report, export."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from app.bundle import (
    METADATA_FILE,
    REFERENCE_FILE,
    REPORT_DIR,
    SAVED_MODEL_DIR,
    STATS_FILE,
    ClassificationTarget,
    Cost,
    FeatureImportance,
    Flatbuffer,
    Metadata,
    Promotion,
    RuntimeCost,
    TrainingCost,
    publish_version,
    storage,
    write_json,
)
from training.config import TrainConfig
from training.cost import RunCost
from training.data import BUILTIN_SOURCES, DEFAULT_SOURCE
from training.errors import TrainingError
from training.evaluate import PRIMARY_METRIC, evaluate
from training.fit_in_memory import fit_in_memory
from training.fit_streamed import fit_streamed
from training.fitted import Fitted
from training.memory import with_data_path
from training.plots import write_plots
from training.promotion import Champion, NotPromoted, decide, describe, passed, write_report
from training.reference import reference_distributions
from training.report import write_card
from training.warm_start import Parent

logger = logging.getLogger(__name__)


def run(config: TrainConfig, cost: RunCost | None = None) -> Path | None:
    """Train one bundle and publish it as the next version; return its directory, or None on a
    worker of a multi-worker cluster that is not the chief (the chief publishes). `cost` is
    what measures the run (default: from this call on)."""
    if config.cv_folds and (config.streamed or config.distribute != "none"):
        raise TrainingError(
            "--cv needs the data in memory and one process: drop --stream "
            "(or the directory or glob) and --distribute"
        )
    if config.stream and str(config.data or DEFAULT_SOURCE) in BUILTIN_SOURCES:
        raise TrainingError("--stream reads files; the built-in data sets are small, drop it")
    if config.cv_folds and config.warm_start is not None:
        raise TrainingError("--cv scores training from random weights: drop it with --warm-start")
    # Both are read before the data, so that a bad name fails in well under a second.
    parent = Parent.at(config.warm_start) if config.warm_start is not None else None
    model_dir = config.model_dir / config.model_name
    champion = Champion.of(model_dir) if config.promote_if_better else None
    config = with_data_path(config)
    cost = cost or RunCost()
    fit = fit_streamed if config.streamed else fit_in_memory
    fitted = fit(config, cost, parent, champion)
    from training.distributed import is_chief

    if not is_chief():
        logger.info("not the chief of the cluster: the chief writes the bundle")
        return None
    if not config.promote_if_better:
        return _publish(config, fitted, cost)
    candidate = evaluate(fitted.stats, fitted.test_y, fitted.test_outputs)
    promotion = decide(
        PRIMARY_METRIC[fitted.task], candidate, fitted.champion, config.promote_margin
    )
    data = str(config.data or DEFAULT_SOURCE)
    if not passed(promotion):
        report = write_report(data, model_dir, promotion, None)
        raise NotPromoted(f"not published, {describe(promotion)}", report)
    published = _publish(config, fitted, cost, promotion)
    report = write_report(data, model_dir, promotion, published)
    logger.info("%s; report %s", describe(promotion), report)
    return published


def _publish(
    config: TrainConfig, fitted: Fitted, cost: RunCost, promotion: Promotion | None = None
) -> Path:
    from training import model as network
    from training.importance import permutation_importance
    from training.litert import export_flatbuffers
    from training.serving_cost import measure, runtimes_of

    stats, params, result = fitted.stats, fitted.params, fitted.result
    primary = PRIMARY_METRIC[fitted.task]
    model_dir = config.model_dir / config.model_name
    check_x, check_y = fitted.check_rows
    with publish_version(model_dir) as (scratch, version):
        with cost.phase("export"):
            network.export_saved_model(result.model, scratch / SAVED_MODEL_DIR)
            litert, litert_quantized = export_flatbuffers(
                scratch, stats, check_x, check_y, config.quantize
            )
            write_json(scratch / STATS_FILE, stats)
        with cost.phase("reference"):
            x, missing = fitted.reference_rows
            outputs = network.network_outputs(result.model, x)
            write_json(
                scratch / REFERENCE_FILE, reference_distributions(stats, x, missing, outputs)
            )
        with cost.phase("serving_cost"):
            runtimes = runtimes_of(scratch, litert, litert_quantized)
            serving = measure(runtimes, check_x, config.cost_per_cpu_hour)
        with cost.phase("importance"):
            importance = permutation_importance(
                next(iter(runtimes.values())), stats, fitted.check_rows, primary, seed=params.seed
            )
        metadata = _metadata(config, fitted, version, (litert, litert_quantized), importance)
        metadata = metadata.model_copy(update={"parent": fitted.parent, "promotion": promotion})
        target = stats.target
        actual_vs_predicted = (
            None
            if isinstance(target, ClassificationTarget)
            else (target.to_units(fitted.test_y), target.to_units(fitted.test_outputs))
        )
        with cost.phase("report"):
            images = write_plots(
                scratch / REPORT_DIR, metadata, result.history, actual_vs_predicted
            )
        # Last, so that the record covers the whole run, report included.
        training = cost.training(result.rows_per_second, config.cost_per_cpu_hour)
        metadata = metadata.model_copy(
            update={
                "training": {**metadata.training, **cost.record(training, result.rows_per_second)}
            }
        )
        metadata = _write_with_storage(
            scratch,
            metadata,
            images,
            training=training,
            serving=serving,
            cost_per_cpu_hour=config.cost_per_cpu_hour,
        )
    t = training
    logger.info(
        "cost: %.1f s wall, %.1f CPU-s, peak RSS %.0f MB; %s",
        t.wall_seconds,
        t.cpu_seconds,
        t.peak_rss_mb,
        ", ".join(f"{name} {p.wall_seconds:.1f} s" for name, p in t.phases.items()),
    )
    return model_dir / str(version)


def _write_with_storage(
    scratch: Path,
    metadata: Metadata,
    images: dict[str, bytes],
    *,
    training: TrainingCost,
    serving: dict[str, RuntimeCost],
    cost_per_cpu_hour: float | None,
) -> Metadata:
    """Write the card and the metadata with the version's bytes on disk in them. Those bytes
    include the two files themselves, so write and measure until the figures stop changing
    (the second round, or the third when a size gains a digit)."""
    measured = storage(scratch)
    for _ in range(5):
        cost = Cost(
            training=training,
            storage=measured,
            serving=serving,
            cost_per_cpu_hour=cost_per_cpu_hour,
        )
        metadata = metadata.model_copy(update={"cost": cost})
        write_card(scratch / REPORT_DIR, metadata, images)
        write_json(scratch / METADATA_FILE, metadata)
        measured = storage(scratch)
        if measured == cost.storage:
            return metadata
    raise TrainingError("the bundle's size kept changing while its metadata was written")


def _metadata(
    config: TrainConfig,
    fitted: Fitted,
    version: int,
    flatbuffers: tuple[Flatbuffer | None, Flatbuffer | None],
    importance: FeatureImportance,
) -> Metadata:
    """What the bundle says of itself, before its cost is added."""
    from training import model as network

    stats, params, result = fitted.stats, fitted.params, fitted.result
    litert, litert_quantized = flatbuffers
    test = evaluate(stats, fitted.test_y, fitted.test_outputs)
    primary = PRIMARY_METRIC[fitted.task]
    beats = test.metrics[primary] > fitted.reference["linear"].metrics[primary]
    versions = network.versions()
    return Metadata(
        name=config.model_name,
        version=version,
        created_at=datetime.now(UTC),
        task=fitted.task,
        features=fitted.features,
        target=fitted.target,
        classes=stats.target.classes if isinstance(stats.target, ClassificationTarget) else None,
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
        feature_importance=importance,
        tensorflow_version=versions["tensorflow"],
        keras_version=versions["keras"],
    )
