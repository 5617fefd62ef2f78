"""Fitting on data read in chunks: the schema and statistics passes, the training loop over
`tf.data` (from the encoded-row cache after the first read), and the test pass."""

from __future__ import annotations

import logging
import time

import numpy as np

from app.bundle import RowCounts
from training.cache import EncodedCache, cache_key
from training.config import Plan, TrainConfig
from training.cost import RunCost
from training.evaluate import baseline_outputs, evaluate, fit_baselines
from training.fitted import LITERT_CHECK_ROWS, Fitted, log_pass, plan_for
from training.preprocess import encoded_inputs
from training.promotion import Champion
from training.reference import reference_sample
from training.scan import StreamSchema, StreamStats, fit_stream_stats, scan_schema
from training.sources import TEST, TRAIN, VALIDATION
from training.streaming import ShardRows
from training.warm_start import Parent

logger = logging.getLogger(__name__)


EVALUATION_ROWS = 1_000_000
"""Streamed data: test rows scored at most (a uniform sample of them beyond)."""


def fit_streamed(
    config: TrainConfig,
    cost: RunCost,
    parent: Parent | None = None,
    champion: Champion | None = None,
) -> Fitted:
    """The same recipe on data read in chunks: two passes for the schema and statistics, the
    training loop over `tf.data`, one more pass to score the test rows."""
    seed = config.params.seed
    source = str(config.data)
    started = time.perf_counter()
    with cost.phase("read"):
        schema = scan_schema(
            source,
            config.target,
            task=parent.metadata.task if parent else config.task,
            categorical=[*config.categorical, *(parent.categorical if parent else [])],
            drop=config.drop,
            seed=seed,
            chunk_rows=config.chunk_rows,
        )
        if parent is not None:
            parent.check_columns(
                schema.features, schema.categorical, schema.target, schema.summary.dropped_columns
            )
            if schema.target_stats is not None:
                parent.check_classes(schema.target_stats.classes)
    rows_read = schema.summary.rows_read
    started = log_pass("first pass (columns, task, classes)", rows_read, started)
    with cost.phase("statistics"):
        fitted = fit_stream_stats(schema, config.min_category_count, seed, config.chunk_rows)
        if parent is not None:  # the counts of this data, the parent's statistics
            fitted = parent.inherit(fitted, schema)
    started = log_pass("second pass (statistics)", rows_read, started)
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

    params = plan_for(config, counts[TRAIN])
    key = cache_key(schema.summary.sha256, stats.model_dump_json(), str(params.seed))
    cache = EncodedCache.open(config.cache_dir, key) if config.cache else None
    rows = ShardRows(schema, stats, params.seed, config.chunk_rows, cache)
    try:
        return _train_streamed(
            config, cost, schema, fitted, params=params, rows=rows, parent=parent, champion=champion
        )
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
    parent: Parent | None,
    champion: Champion | None,
) -> Fitted:
    """The streamed fit and test pass, over rows read from the shards or their cache."""
    with cost.phase("tensorflow"):  # importing it and setting up the strategy take seconds
        from training import distributed, loop
        from training import model as network

        strategy = distributed.make_strategy(config.distribute)
    stats, counts = fitted.stats, fitted.rows
    rows_read = schema.summary.rows_read
    weights = None
    if params.balance_classes and fitted.class_counts is not None:
        weights = network.balanced_weights(fitted.class_counts)
    with cost.phase("fit"):
        result = loop.fit(
            strategy,
            loop.TrainingRows(
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
            initial=parent.weights if parent else None,
        )
    with cost.phase("evaluation"):
        started = time.perf_counter()
        sample, sample_y = encoded_inputs(stats, fitted.baseline_sample)
        fitted_baselines = fit_baselines(stats, sample.x, sample_y, params.seed)
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
        log_pass("test pass (network and baselines)", rows_read, started)
    champion_score = None
    if config.promote_if_better and (champion := Champion.of(config.model_dir / config.model_name)):
        with cost.phase("promotion_gate"):  # the same test rows, through its own statistics
            started = time.perf_counter()
            held_out = rows.columns(TEST, fraction=fraction)
            champion_score = champion.score(*champion.inputs(held_out, schema.target))
            log_pass("champion pass (promotion gate)", rows_read, started)
    return Fitted(
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
        reference_rows=reference_sample(sample, params.seed),
        parent=parent.lineage if parent else None,
        champion=champion_score,
    )
