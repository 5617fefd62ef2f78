"""`tf.distribute`: the strategy `--distribute` names (one machine's devices, or several
machines via TF_CONFIG), and which process writes the bundle. The loop that fits under it is
`training.loop`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

logger = logging.getLogger(__name__)

Distribute = Literal["none", "mirrored", "multi-worker"]
DISTRIBUTE_CHOICES: tuple[Distribute, ...] = ("none", "mirrored", "multi-worker")


def make_strategy(kind: Distribute) -> Any:
    """The strategy for `--distribute`. Create it before any other TensorFlow work: the
    multi-worker one configures the runtime's collectives and waits for every worker."""
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            logger.warning("TF_CONFIG is not set: multi-worker training runs as a single worker")
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
    has no chief, or the only process when there is no TF_CONFIG."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
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
