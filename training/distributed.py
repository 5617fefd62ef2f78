"""`tf.distribute`: the strategy `--distribute` names (one machine's devices, or several
machines via TF_CONFIG, or the variables `training.cluster` builds it from), and which process
writes the bundle. The loop that fits under it is `training.loop`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal

from training.cluster import HOSTS_ENV, INDEX_ENV, TF_CONFIG, resolve_tf_config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

logger = logging.getLogger(__name__)

Distribute = Literal["none", "mirrored", "multi-worker"]
DISTRIBUTE_CHOICES: tuple[Distribute, ...] = ("none", "mirrored", "multi-worker")


def export_tf_config() -> dict[str, Any] | None:
    """Set TF_CONFIG, which TensorFlow reads, from the cluster variables when it is not set
    (`training.cluster`); return the cluster this process is part of, None for none."""
    config, derived = resolve_tf_config(os.environ)
    if derived:
        os.environ[TF_CONFIG] = json.dumps(config)
        logger.info("TF_CONFIG from %s and %s: %s", INDEX_ENV, HOSTS_ENV, os.environ[TF_CONFIG])
    return config


def make_strategy(kind: Distribute) -> Any:
    """The strategy for `--distribute`. Create it before any other TensorFlow work: the
    multi-worker one configures the runtime's collectives and waits for every worker."""
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "multi-worker":
        if export_tf_config() is None:
            logger.warning(
                "neither TF_CONFIG nor %s is set: multi-worker training runs as a single worker",
                HOSTS_ENV,
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logger.info(
        "distribute %s: %d replica(s) in sync on %s",
        kind,
        strategy.num_replicas_in_sync,
        ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU")
        or "CPU",
    )
    return strategy


def is_chief() -> bool:
    """Whether this process writes the bundle: the `chief` task, or worker 0 when the cluster
    has no chief, or the only process when there is no TF_CONFIG (nor the variables it is
    built from, `training.cluster`)."""
    config = resolve_tf_config(os.environ)[0] or {}
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker"
        and int(task.get("index", 0)) == 0
        and "chief" not in config.get("cluster", {})
    )
