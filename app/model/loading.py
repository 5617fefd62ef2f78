"""Load one bundle version into a warmed-up Predictor, or fail with a BundleError."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from app.bundle import (
    BundleError,
    ServedMetadata,
    TrainedAs,
    list_models,
    read_metadata,
    read_reference,
    read_stats,
    resolve_version_dir,
)
from app.model.predictor import Predictor
from app.model.runtime import open_runtime
from app.settings import Settings

logger = logging.getLogger(__name__)


def load_models(settings: Settings) -> dict[str, Predictor]:
    """Every model under MODEL_DIR, each at its newest or pinned version, the default first.

    Any model that fails to load stops start-up: an operator should not find out later that
    half of the models are missing.
    """
    names = [settings.model_name]
    names += [name for name in list_models(settings.model_dir) if name != settings.model_name]
    return {name: load_predictor(settings, name) for name in names}


def load_predictor(
    settings: Settings, name: str | None = None, version: int | None = None
) -> Predictor:
    """Resolve, read, check and warm one model (MODEL_NAME unless named) at `version`, else at
    its pinned or newest version; every failure names its path."""
    started = time.perf_counter()
    name = name or settings.model_name
    version = version or settings.pinned_version(name)
    version_dir = resolve_version_dir(settings.model_dir, name, version)
    stats = read_stats(version_dir)
    trained = read_metadata(version_dir)
    if trained.features != stats.feature_names:
        raise BundleError(
            version_dir, "metadata and preprocessing statistics list different features"
        )
    metadata = ServedMetadata.served_from(trained, name, int(version_dir.name))
    if metadata.trained_as != TrainedAs(name=metadata.name, version=metadata.version):
        # A bundle copied under another name or number: the directory is what is served.
        logger.warning(
            "model %s version %d was trained as %s version %d; serving it as the directory "
            "names it",
            metadata.name,
            metadata.version,
            trained.name,
            trained.version,
            extra={"model_name": metadata.name, "model_version": metadata.version},
        )
    runtime = open_runtime(settings.model_runtime, version_dir, metadata)
    if runtime.input_width not in (None, stats.input_width):
        raise BundleError(
            version_dir,
            f"the {runtime.name} model takes {runtime.input_width} inputs but the statistics "
            f"encode {stats.input_width}",
        )
    predictor = Predictor(
        stats,
        metadata,
        runtime,
        max_rows=settings.max_rows,
        path=version_dir,
        reference=read_reference(version_dir),
    )
    _warm_up(predictor, version_dir)
    logger.info(
        "loaded model %s version %d (%d features, runtime %s) in %.2f s",
        predictor.name,
        predictor.version,
        len(stats.features),
        runtime.name,
        time.perf_counter() - started,
    )
    return predictor


def _warm_up(predictor: Predictor, version_dir: Path) -> None:
    # The first call traces and allocates; pay for it before the service says it is ready,
    # and prove the model gives a sane answer for an all-missing row.
    out = predictor.predict_columns({f: [None] for f in predictor.features})
    numbers = out.probabilities if out.probabilities is not None else np.asarray(out.values)
    if len(out.values) != 1 or not np.isfinite(numbers).all():
        raise BundleError(version_dir, f"warm-up prediction is not finite: {out}")
