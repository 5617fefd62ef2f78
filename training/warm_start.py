"""Warm start: train a new version from a published one's weights, keeping its preprocessing
statistics and vocabularies, so that every input means what it meant to the parent (a category
the parent never saw goes to the out-of-vocabulary slot, as it does when serving)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.bundle import (
    SAVED_MODEL_DIR,
    BundleError,
    CategoricalFeature,
    ClassificationTarget,
    Lineage,
    Metadata,
    PreprocessingStats,
    read_metadata,
    read_stats,
    resolve_version_dir,
)
from training.errors import TrainingError
from training.scan import StreamSchema, StreamStats


@dataclass(frozen=True)
class Parent:
    """A published version a run starts from."""

    path: Path
    metadata: Metadata
    stats: PreprocessingStats

    @classmethod
    def find(cls, model_root: Path, spec: str) -> Parent:
        """`NAME` (its newest version) or `NAME/VERSION`, under `model_root`."""
        name, _, version = spec.partition("/")
        if not name or (version and not version.isdigit()):
            raise TrainingError(f"--warm-start {spec!r}: expected NAME or NAME/VERSION")
        try:
            path = resolve_version_dir(model_root, name, int(version) if version else None)
            return cls(path, read_metadata(path), read_stats(path))
        except BundleError as exc:
            raise TrainingError(f"--warm-start {spec}: {exc}") from None

    @classmethod
    def at(cls, path: Path) -> Parent:
        try:
            return cls(path, read_metadata(path), read_stats(path))
        except BundleError as exc:
            raise TrainingError(f"--warm-start: {exc}") from None

    @property
    def lineage(self) -> Lineage:
        # The directory names the version, as serving does: a promoted copy is its own parent.
        return Lineage(
            name=self.path.parent.name,
            version=int(self.path.name),
            data_source=self.metadata.data.source,
            data_sha256=self.metadata.data.sha256,
        )

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.stats.features if isinstance(f, CategoricalFeature)]

    def check_columns(
        self,
        features: Sequence[str],
        categorical: Sequence[str],
        target: str,
        dropped: dict[str, str],
    ) -> None:
        """Refuse data whose columns are not the parent's features, listing every difference."""
        wanted = self.stats.feature_names
        problems = []
        if target != self.stats.target.name:
            problems.append(f"the target is {target!r}, the parent's is {self.stats.target.name!r}")
        if missing := [f for f in wanted if f not in features]:
            problems.append(
                "missing: "
                + ", ".join(f"{f} ({dropped[f]})" if f in dropped else f for f in missing)
            )
        if extra := [f for f in features if f not in wanted]:
            problems.append(
                f"not among the parent's features (drop them with --drop): {', '.join(extra)}"
            )
        if changed := [
            f for f in features if f in wanted and f not in self.categorical and f in categorical
        ]:
            problems.append(f"numbers in the parent, text here: {', '.join(changed)}")
        if problems:
            raise TrainingError(
                f"the data does not match the features of {self.lineage.name} version "
                f"{self.lineage.version}: " + "; ".join(problems)
            )

    def check_classes(self, labels: Sequence[object]) -> None:
        """Refuse class labels the parent's output has no place for."""
        target = self.stats.target
        if not isinstance(target, ClassificationTarget):
            return
        unknown = []
        for label in labels:
            try:
                target.encode([label])
            except ValueError:
                unknown.append(label)
        if unknown:
            raise TrainingError(
                f"classes the parent {self.lineage.name} version {self.lineage.version} does not "
                f"have: {', '.join(map(repr, unknown))} (its classes: {target.classes}); "
                "train from scratch to add classes"
            )

    def class_counts(self, classes: Sequence[object], counts: Sequence[int]) -> list[int]:
        """Rows per class of the parent's, from rows per class of `classes`."""
        target = self.stats.target
        assert isinstance(target, ClassificationTarget)  # noqa: S101 (classification only)
        aligned = [0] * len(target.classes)
        for i, count in zip(target.encode(list(classes)), counts, strict=True):
            aligned[int(i)] = count
        return aligned

    def inherit(self, fitted: StreamStats, schema: StreamSchema) -> StreamStats:
        """The streamed statistics pass's counts of the new data, with the parent's
        statistics in place of the ones it fitted."""
        counts = fitted.class_counts
        if counts is not None and schema.target_stats is not None:
            counts = self.class_counts(schema.target_stats.classes, counts)
        return replace(fitted, stats=self.stats, class_counts=counts)

    def weights(self, expected: Sequence[Any]) -> list[np.ndarray]:
        """The parent network's weights, in Keras' order, checked against the shapes of the
        freshly built network's `expected` weights."""
        import tensorflow as tf

        path = self.path / SAVED_MODEL_DIR
        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError) as exc:
            raise TrainingError(f"--warm-start: cannot read {path}: {exc}") from None
        weights = [np.asarray(v.numpy()) for v in loaded.variables]
        shapes = [tuple(w.shape) for w in weights]
        wanted = [tuple(w.shape) for w in expected]
        if shapes != wanted:
            raise TrainingError(
                f"--warm-start: {path} holds weights of shapes {shapes}, not the {wanted} of "
                "this network"
            )
        return weights
