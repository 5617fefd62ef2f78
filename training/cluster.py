"""TF_CONFIG for a multi-worker run, from TF_CONFIG itself or from three plain variables.

A Kubernetes Indexed Job cannot hand each pod its own TF_CONFIG, but it gives each one its
index (`JOB_COMPLETION_INDEX`) and, with a headless Service, a stable DNS name per index. So a
worker can build its TF_CONFIG from:

- `TABSERVE_WORKER_HOSTS`: every worker's `host:port`, either as a template in which
  `{index}` stands for the worker's index (`train-{index}.train:2222`, with
  `TABSERVE_WORKER_COUNT`), or as a comma-separated list (`10.0.0.5:2222,10.0.0.6:2222`);
- `TABSERVE_WORKER_COUNT`: how many workers there are (needed with a template; with a list, it
  must agree with the list if set);
- `JOB_COMPLETION_INDEX`: this worker's index, 0 to count - 1 (Kubernetes sets it).

Every worker is a `worker` task and the cluster has no `chief`, so worker 0 is the chief
(`training.distributed.is_chief`), as in TensorFlow's MultiWorkerMirroredStrategy.
deploy/kubernetes/training/ sets exactly these; docs/containers.md shows them in use.

No TensorFlow here: the functions are pure, on a mapping of environment variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from training.errors import TrainingError

TF_CONFIG = "TF_CONFIG"
"""TensorFlow's own variable: when set, it is used as it is and the others are ignored."""
HOSTS_ENV = "TABSERVE_WORKER_HOSTS"
"""Every worker's `host:port`: a template with `{index}`, or a comma-separated list."""
COUNT_ENV = "TABSERVE_WORKER_COUNT"
"""How many workers the cluster has."""
INDEX_ENV = "JOB_COMPLETION_INDEX"
"""This worker's index: what Kubernetes sets in each pod of an Indexed Job."""
INDEX_PLACEHOLDER = "{index}"

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class ClusterError(TrainingError):
    """The cluster variables do not describe a cluster this worker belongs to."""


def _count(text: str, name: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ClusterError(f"{name} must be an integer, got {text!r}") from None
    return value


def worker_hosts(env: Mapping[str, str]) -> list[str] | None:
    """Every worker's `host:port`, in index order, from `TABSERVE_WORKER_HOSTS` (and
    `TABSERVE_WORKER_COUNT`); None when `TABSERVE_WORKER_HOSTS` is unset or empty."""
    spec = env.get(HOSTS_ENV, "").strip()
    if not spec:
        return None
    count_text = env.get(COUNT_ENV, "").strip()
    count = _count(count_text, COUNT_ENV) if count_text else None
    if count is not None and count < 1:
        raise ClusterError(f"{COUNT_ENV} must be at least 1, got {count}")
    if INDEX_PLACEHOLDER in spec:
        if count is None:
            raise ClusterError(
                f"{HOSTS_ENV} is a template ({spec!r}): set {COUNT_ENV} to the number of workers"
            )
        hosts = [spec.replace(INDEX_PLACEHOLDER, str(i)) for i in range(count)]
    else:
        hosts = [h.strip() for h in spec.split(",") if h.strip()]
        if count is not None and count != len(hosts):
            raise ClusterError(
                f"{HOSTS_ENV} lists {len(hosts)} worker(s) but {COUNT_ENV} is {count}"
            )
    for host in hosts:
        match = _HOST_PORT.match(host)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ClusterError(f"{HOSTS_ENV}: {host!r} is not host:port")
    if len(set(hosts)) != len(hosts):
        raise ClusterError(f"{HOSTS_ENV} names a worker twice: {', '.join(hosts)}")
    return hosts


def tf_config_from_env(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The TF_CONFIG that `TABSERVE_WORKER_HOSTS`, `TABSERVE_WORKER_COUNT` and
    `JOB_COMPLETION_INDEX` describe, or None when `TABSERVE_WORKER_HOSTS` is unset. TF_CONFIG
    itself is not looked at: see `resolve_tf_config`."""
    hosts = worker_hosts(env)
    if hosts is None:
        return None
    index_text = env.get(INDEX_ENV, "").strip()
    if not index_text:
        raise ClusterError(
            f"{HOSTS_ENV} is set but {INDEX_ENV} is not: set it to this worker's index "
            f"(Kubernetes does in an Indexed Job)"
        )
    index = _count(index_text, INDEX_ENV)
    if not 0 <= index < len(hosts):
        raise ClusterError(f"{INDEX_ENV} is {index}, not one of the {len(hosts)} worker(s)")
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}


def resolve_tf_config(env: Mapping[str, str]) -> tuple[dict[str, Any] | None, bool]:
    """The cluster this process is part of: TF_CONFIG when set (non-empty), else the one the
    variables above describe, else None (a single process); and whether it was derived."""
    text = env.get(TF_CONFIG, "").strip()
    if text:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClusterError(f"{TF_CONFIG} is not JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ClusterError(f"{TF_CONFIG} must be a JSON object, got {text!r}")
        return config, False
    derived = tf_config_from_env(env)
    return derived, derived is not None
