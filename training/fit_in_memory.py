"""Fitting on data loaded whole: read, split, encode once, free the frames, fit, score."""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from app.bundle import RowCounts
from training.config import TrainConfig
from training.cost import RunCost
from training.data import Dataset, feature_columns, load_dataset, split_dataset
from training.errors import TrainingError
from training.evaluate import baselines
from training.fitted import LITERT_CHECK_ROWS, Fitted, plan_for
from training.preprocess import encoded_inputs, fit_stats, model_inputs
from training.promotion import Champion
from training.reference import reference_sample
from training.warm_start import Parent

logger = logging.getLogger(__name__)


def fit_in_memory(
    config: TrainConfig,
    cost: RunCost,
    parent: Parent | None = None,
    champion: Champion | None = None,
) -> Fitted:
    """`parent`: the version a warm start begins from; `champion`: the version the promotion
    gate scores on the same test rows."""
    with cost.phase("read"):
        dataset = _load(config, parent)
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
    params = plan_for(config, len(split.train))
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
    champion_rows = None
    if champion is not None:  # encoded now, while the test frame is here; scored after the fit
        with cost.phase("promotion_gate"):
            columns = feature_columns(split.test, dataset.features)
            held_out = [(columns, split.test[dataset.target].to_numpy())]
            champion_rows = champion.inputs(held_out, dataset.target)
    with cost.phase("statistics"):
        stats = (
            parent.stats if parent else fit_stats(dataset, train_rows, config.min_category_count)
        )
        train_encoded, train_y = encoded_inputs(stats, train_rows)
        train_xy = (train_encoded.x, train_y)
        drift_rows = reference_sample(train_encoded, params.seed)
        del train_encoded  # its missing mask, beyond the sample, is not needed
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
    with cost.phase("tensorflow"):  # importing it and setting up the strategy take seconds
        from training import distributed, loop
        from training import model as network

        strategy = distributed.make_strategy(config.distribute)
    with cost.phase("fit"):
        result = loop.fit_arrays(
            strategy,
            train_xy,
            stats.target,
            params,
            validation,
            initial=parent.weights if parent else None,
        )
    champion_score = None
    if champion is not None and champion_rows is not None:
        with cost.phase("promotion_gate"):
            champion_score = champion.score(*champion_rows)
    with cost.phase("evaluation"):
        test_outputs = network.network_outputs(result.model, test_xy[0])
        reference, fitted_baselines = baselines(stats, train_xy, test_xy, params.seed)
    return Fitted(
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
        reference_rows=drift_rows,
        cv_scores=cv_scores,
        parent=parent.lineage if parent else None,
        champion=champion_score,
    )


def _load(config: TrainConfig, parent: Parent | None) -> Dataset:
    """The data, read as the parent read its own when there is one (its task, its categorical
    columns), and refused when its columns or classes are not the parent's."""
    if parent is None:
        return load_dataset(
            config.data, config.target, config.task, config.categorical, config.drop
        )
    dataset = load_dataset(
        config.data,
        config.target,
        parent.metadata.task,
        [*config.categorical, *parent.categorical],
        config.drop,
    )
    parent.check_columns(
        dataset.features, dataset.categorical, dataset.target, dataset.summary.dropped_columns
    )
    parent.check_classes(dataset.frame[dataset.target].unique().tolist())
    return dataset


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
