"""Two streaming passes over shards: what the columns are, then the training statistics.

The first pass decides what `training.data.load_dataset` decides on a frame in memory (each
column's kind, the task, the classes, the columns to drop) from per-column tallies. The second
fits the preprocessing statistics on the training rows from running moments and category
counts. Memory is bounded by the number of columns, categories and classes, not by rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from app.bundle import (
    CategoricalFeature,
    ClassificationTarget,
    ColumnSummary,
    DataSummary,
    Feature,
    NumericFeature,
    PreprocessingStats,
    RegressionTarget,
    Target,
)
from training.column_rules import (
    ROW_INDEX,
    RowIndexCheck,
    check_columns_exist,
    is_blank_header,
    warn_identifiers,
    with_blank_headers,
)
from training.columns import as_numbers, as_text
from training.data import (
    MIN_ROWS,
    TEST_FRACTION,
    VALIDATION_FRACTION,
    Task,
    labels_of,
    looks_like_classes,
)
from training.errors import TrainingError
from training.evaluate import BASELINE_ROWS
from training.sources import (
    CHUNK_ROWS,
    TEST,
    TRAIN,
    VALIDATION,
    check_same_columns,
    read_chunks,
    resolve_shards,
    shards_sha256,
    split_codes,
)
from training.tallies import MAX_CLASSES, ColumnTally, Moments, Reservoir, TargetTally

logger = logging.getLogger(__name__)


def _decide_columns(
    tallies: dict[str, ColumnTally],
    indexes: dict[str, RowIndexCheck],
    drop: Sequence[str],
    target: str,
) -> tuple[dict[str, ColumnSummary], dict[str, str], list[str]]:
    """(summaries of the features kept, why each other column was dropped, the identifier-like
    features), logging the columns dropped without being asked."""
    dropped = {c: "dropped by --drop" for c in drop if c != target}
    summaries: dict[str, ColumnSummary] = {}
    identifiers: list[str] = []
    for name, tally in tallies.items():
        summary, reason = tally.summary()
        if name in indexes and indexes[name].is_row_index:
            reason = ROW_INDEX
        if reason:
            dropped[name] = reason
        else:
            summaries[name] = summary
            if tally.identifier_like(summary):
                identifiers.append(name)
    if dropped_names := [c for c in dropped if c not in drop]:
        logger.warning(
            "dropped columns: %s", ", ".join(f"{c} ({dropped[c]})" for c in dropped_names)
        )
    return summaries, dropped, identifiers


@dataclass(frozen=True)
class StreamSchema:
    """What the first pass decided: the same things `Dataset` holds, without the rows."""

    shards: list[Path]
    features: list[str]
    categorical: list[str]
    target: str
    task: Task
    integral_labels: bool
    target_stats: ClassificationTarget | None
    """Classification: the classes, from every usable row."""
    summary: DataSummary

    def clean(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], pd.Series, np.ndarray]:
        """A chunk's feature columns as the transform takes them, its targets, and which rows
        have one. Targets and features are only for the rows that have a target."""
        column = frame[self.target]
        numbers = as_numbers(column)
        if self.task == "regression":
            if numbers is None:
                raise _changed(self.target)
            keep = np.isfinite(numbers.to_numpy())
            y = numbers[keep]
        else:
            labels = labels_of(column, numbers, self.integral_labels).dropna()
            keep = np.zeros(len(frame), dtype=bool)
            keep[frame.index.get_indexer(labels.index)] = True
            y = labels
        rows = frame[keep]
        features: dict[str, np.ndarray] = {}
        for name in self.features:
            if name in self.categorical:
                features[name] = as_text(rows[name]).to_numpy()
            else:
                numeric = as_numbers(rows[name])
                if numeric is None:
                    raise _changed(name)
                features[name] = numeric.to_numpy()
        return features, y, keep


@dataclass(frozen=True)
class CleanChunk:
    """A chunk's rows that have a target: cleaned columns, targets, row hashes and splits."""

    features: dict[str, np.ndarray]
    y: pd.Series
    hashes: np.ndarray
    splits: np.ndarray
    """TRAIN, VALIDATION or TEST per row."""


def clean_chunks(
    schema: StreamSchema, seed: int, chunk_rows: int = CHUNK_ROWS, threads: bool = True
) -> Iterator[CleanChunk]:
    """Every pass after the first: the shards, chunk by chunk, cleaned and split."""
    for chunk in read_chunks(schema.shards, seed, chunk_rows, threads):
        features, y, keep = schema.clean(chunk.frame)
        hashes = chunk.hashes[keep]
        splits = split_codes(hashes, TEST_FRACTION, VALIDATION_FRACTION)
        yield CleanChunk(features, y, hashes, splits)


def _changed(column: str) -> TrainingError:
    return TrainingError(
        f"column {column!r} holds text that the first pass did not see: "
        "were the files modified while training?"
    )


def scan_schema(
    source: str,
    target: str,
    *,
    task: Task | Literal["auto"],
    categorical: Sequence[str],
    drop: Sequence[str],
    seed: int,
    chunk_rows: int = CHUNK_ROWS,
    text_target: bool = False,
) -> StreamSchema:
    """The first pass: decide each column's kind, the task and the classes."""
    shards = resolve_shards(source)
    columns = check_same_columns(shards)
    categorical = with_blank_headers(categorical, columns)
    drop = with_blank_headers(drop, columns)
    check_columns_exist(columns, source, [target], "target column")
    check_columns_exist(columns, source, categorical, "--categorical column")
    check_columns_exist(columns, source, drop, "--drop column")
    candidates = [c for c in columns if c != target and c not in drop]
    tallies = {c: ColumnTally(numeric=c not in categorical) for c in candidates}
    indexes = {c: RowIndexCheck() for c in candidates if is_blank_header(c)}
    target_tally = TargetTally(numeric=not text_target)
    rows_read = 0
    for chunk in read_chunks(shards, seed, chunk_rows):
        frame = chunk.frame
        may_have_target = target_tally.add(frame[target], chunk.shard.name, chunk.start)
        rows = frame[may_have_target]
        for name, tally in tallies.items():
            tally.add(rows[name])
        for name, check in indexes.items():
            check.add(frame[name], restart=chunk.start == 0)
        rows_read += len(frame)
    if target_tally.flipped and task != "regression":
        # A target of numbers and text is a class label; count its labels from the start.
        logger.info("%s: not numbers after all; reading the data again for its labels", target)
        return scan_schema(
            source,
            target,
            task=task,
            categorical=categorical,
            drop=drop,
            seed=seed,
            chunk_rows=chunk_rows,
            text_target=True,
        )
    if flipped := [name for name, tally in tallies.items() if tally.flipped]:
        # Rare, and cheaper than tallying every numeric column as text as well on every pass.
        logger.info(
            "%s: not numbers after all; reading the data again to count their categories",
            ", ".join(flipped),
        )
        return scan_schema(
            source,
            target,
            task=task,
            categorical=[*categorical, *flipped],
            drop=drop,
            seed=seed,
            chunk_rows=chunk_rows,
            text_target=text_target,
        )

    decided, labels = _decide_task(target_tally, target, task)
    if decided == "classification" and not target_tally.numeric and target_tally.non_finite_numbers:
        raise TrainingError(
            f"target column {target!r} holds text labels and also cells that read as infinite "
            "numbers; spell those labels as text or clean them"
        )
    usable = (
        target_tally.finite_count if target_tally.numeric else rows_read - target_tally.text_missing
    )
    dropped_rows = rows_read - usable
    if dropped_rows:
        logger.warning("dropped %d rows whose target %r is missing", dropped_rows, target)
    summaries, dropped, identifiers = _decide_columns(tallies, indexes, drop, target)
    warn_identifiers(identifiers)
    if not summaries:
        raise TrainingError(f"{source} has no usable feature columns besides the target {target!r}")
    if usable < MIN_ROWS:
        raise TrainingError(
            f"too few rows to split into train, validation and test: {usable} usable, "
            f"at least {MIN_ROWS} needed"
        )
    features = list(summaries)
    return StreamSchema(
        shards=shards,
        features=features,
        categorical=[c for c in features if summaries[c].kind == "categorical"],
        target=target,
        task=decided,
        integral_labels=target_tally.integral,
        target_stats=None if labels is None else ClassificationTarget.fit(target, labels),
        summary=DataSummary(
            source=source,
            sha256=shards_sha256(shards),
            rows_read=rows_read,
            dropped_missing_target=dropped_rows,
            columns=summaries,
            dropped_columns=dropped,
            identifiers=identifiers,
        ),
    )


@dataclass(frozen=True)
class StreamStats:
    """What the second pass fitted, and the counts training needs."""

    stats: PreprocessingStats
    rows: dict[int, int]
    """Split code -> rows with a target."""
    class_counts: list[int] | None
    """Classification: training rows per class, in the order of the classes."""
    baseline_sample: pd.DataFrame
    """Up to BASELINE_ROWS training rows, features and target, cleaned."""


def fit_stream_stats(
    schema: StreamSchema, min_category_count: int, seed: int, chunk_rows: int = CHUNK_ROWS
) -> StreamStats:
    """The second pass: the preprocessing statistics of the training rows, as `fit_stats`
    computes them in memory."""
    numeric = {n: Moments() for n in schema.features if n not in schema.categorical}
    missing = dict.fromkeys(numeric, 0)
    counts: dict[str, Counter[str]] = {n: Counter() for n in schema.categorical}
    target = Moments()
    labels: Counter[object] = Counter()
    rows = dict.fromkeys((TRAIN, VALIDATION, TEST), 0)
    sample = Reservoir(BASELINE_ROWS, seed)
    for chunk in clean_chunks(schema, seed, chunk_rows):
        features, y, codes = chunk.features, chunk.y, chunk.splits
        for code in rows:
            rows[code] += int((codes == code).sum())
        train = codes == TRAIN
        for name, moments in numeric.items():
            x = features[name][train]
            finite = np.isfinite(x)
            missing[name] += int((~finite).sum())
            moments.add(x[finite])
        for name, counter in counts.items():
            counter.update(k for k in features[name][train] if isinstance(k, str))
        y_train = y[train]
        if schema.task == "regression":
            target.add(y_train.to_numpy(dtype=np.float64))
        else:
            labels.update(y_train.tolist())
        sample.add(
            pd.DataFrame({n: c[train] for n, c in features.items()}).assign(
                **{schema.target: y_train.to_numpy()}
            )
        )
    if min(rows.values()) == 0:
        raise TrainingError(
            f"the split left no rows for {', '.join(_SPLIT_NAMES[c] for c in rows if not rows[c])}"
            f": {sum(rows.values())} usable rows are too few"
        )
    fitted: list[Feature] = [
        CategoricalFeature.from_counts(name, counts[name], min_category_count)
        if name in schema.categorical
        else NumericFeature.from_moments(
            name,
            rows=rows[TRAIN],
            present=numeric[name].count,
            mean=numeric[name].mean,
            m2=numeric[name].m2,
        )
        for name in schema.features
    ]
    fitted_target: Target
    class_counts = None
    if schema.target_stats is None:
        fitted_target = RegressionTarget.from_moments(
            schema.target, target.count, target.mean, target.m2
        )
    else:
        fitted_target = schema.target_stats
        index = fitted_target.encode(list(labels))
        class_counts = [0] * len(fitted_target.classes)
        for i, count in zip(index, labels.values(), strict=True):
            class_counts[i] = count
    return StreamStats(
        stats=PreprocessingStats(features=fitted, target=fitted_target),
        rows=rows,
        class_counts=class_counts,
        baseline_sample=sample.frame(),
    )


_SPLIT_NAMES = {TRAIN: "training", VALIDATION: "validation", TEST: "test"}


def _decide_task(
    tally: TargetTally, name: str, task: Task | Literal["auto"]
) -> tuple[Task, list[object] | None]:
    """The task, and for classification every label, in its JSON type."""
    if task == "regression" and not tally.numeric:
        if tally.boolean:
            raise TrainingError(f"target column {name!r} holds booleans; it is not numeric")
        shard, row, cell = tally.first_text or ("?", 0, None)
        raise TrainingError(
            f"target column {name!r} is not numeric: row {row} of {shard} holds {cell!r} "
            "(use --task classification to predict it as a class)"
        )
    if task == "auto":
        classes = not tally.numeric or looks_like_classes(
            len(tally.finite_values), tally.finite_count, tally.integral
        )
        task = "classification" if classes else "regression"
    if task == "regression":
        return task, None
    if tally.numeric:
        values = tally.finite_values
        labels: list[object] = [int(v) if tally.integral else v for v in values]
    elif tally.boolean:
        labels = [text == "true" for text in tally.text_labels]
    else:
        labels = list(tally.text_labels)
    if len(labels) > MAX_CLASSES:
        raise TrainingError(
            f"target column {name!r} has more than {MAX_CLASSES} classes; "
            "is it an identifier, or should it be --task regression?"
        )
    if len(labels) < 2:
        only = ", ".join(map(repr, labels)) or "none"
        raise TrainingError(f"classification target {name!r} has fewer than 2 classes: {only}")
    return task, labels
