"""`--distribute`: the same loop under every strategy, and two workers on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.bundle import (
    LITERT_FILE,
    METADATA_FILE,
    SAVED_MODEL_DIR,
    STATS_FILE,
    RegressionTarget,
    read_metadata,
)
from tests.helpers.data import MESSY_DROP, messy_test_rows, write_shards
from tests.helpers.live import free_port
from tests.helpers.offline import offline_predictions
from tests.helpers.service import post_rows, serve
from training.cluster import (
    COUNT_ENV,
    HOSTS_ENV,
    INDEX_ENV,
    TF_CONFIG,
    ClusterError,
    resolve_tf_config,
    tf_config_from_env,
)
from training.config import Hyperparameters

REPO = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT_S = 300
CLUSTER_VARIABLES = (TF_CONFIG, HOSTS_ENV, COUNT_ENV, INDEX_ENV)


def run_workers(argv: list[str], envs: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    """Run one `argv` process per environment at once (each on top of this one, less its
    cluster variables); (exit status, stdout, stderr) of each, killing any still running at
    the end."""
    base = {k: v for k, v in os.environ.items() if k not in CLUSTER_VARIABLES}
    workers = [
        subprocess.Popen(
            argv,
            cwd=REPO,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in envs
    ]
    try:
        outputs = [w.communicate(timeout=WORKER_TIMEOUT_S) for w in workers]
    finally:
        for w in workers:
            w.kill()
    return [(w.returncode, out, err) for w, (out, err) in zip(workers, outputs, strict=True)]


def tf_config(ports: list[int], index: int, chief: bool = False) -> str:
    workers = [f"localhost:{p}" for p in ports]
    cluster = {"chief": workers[:1], "worker": workers[1:]} if chief else {"worker": workers}
    task = (
        {"type": "chief", "index": 0}
        if chief and index == 0
        else {
            "type": "worker",
            "index": index - 1 if chief else index,
        }
    )
    return json.dumps({"cluster": cluster, "task": task})


@pytest.mark.parametrize(
    ("config", "chief"),
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief"}}, True),
        (
            {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker"}},
            False,
        ),
    ],
)
def test_only_the_chief_writes(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, object] | None, chief: bool
) -> None:
    from training.distributed import is_chief

    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert is_chief() is chief


@pytest.mark.parametrize(
    ("env", "hosts", "index"),
    [
        # An Indexed Job's pod: a template, the count, and the index Kubernetes sets.
        (
            {HOSTS_ENV: "train-{index}.train:2222", COUNT_ENV: "3", INDEX_ENV: "2"},
            ["train-0.train:2222", "train-1.train:2222", "train-2.train:2222"],
            2,
        ),
        # A list: the count is its length, and may be given too.
        ({HOSTS_ENV: "10.0.0.5:2222, 10.0.0.6:2222", INDEX_ENV: "0"}, None, 0),
        ({HOSTS_ENV: "a:1,b:2", COUNT_ENV: "2", INDEX_ENV: "1"}, ["a:1", "b:2"], 1),
        ({HOSTS_ENV: "[::1]:2222,127.0.0.1:2223", INDEX_ENV: "1"}, None, 1),
        ({HOSTS_ENV: "solo:2222", COUNT_ENV: "1", INDEX_ENV: "0"}, ["solo:2222"], 0),
    ],
)
def test_tf_config_from_the_index_and_the_hosts(
    env: dict[str, str], hosts: list[str] | None, index: int
) -> None:
    expected = hosts or [h.strip() for h in env[HOSTS_ENV].split(",")]
    assert tf_config_from_env(env) == {
        "cluster": {"worker": expected},
        "task": {"type": "worker", "index": index},
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({HOSTS_ENV: "t-{index}.t:2222", INDEX_ENV: "0"}, f"set {COUNT_ENV}"),
        ({HOSTS_ENV: "t-{index}.t:2222", COUNT_ENV: "two", INDEX_ENV: "0"}, "an integer"),
        ({HOSTS_ENV: "t-{index}.t:2222", COUNT_ENV: "0", INDEX_ENV: "0"}, "at least 1"),
        ({HOSTS_ENV: "t-{index}.t:2222", COUNT_ENV: "2"}, f"{INDEX_ENV} is not"),
        ({HOSTS_ENV: "t-{index}.t:2222", COUNT_ENV: "2", INDEX_ENV: "2"}, "not one of the 2"),
        ({HOSTS_ENV: "t-{index}.t:2222", COUNT_ENV: "2", INDEX_ENV: "-1"}, "not one of"),
        ({HOSTS_ENV: "a:1,b:2", COUNT_ENV: "3", INDEX_ENV: "0"}, "lists 2 worker(s)"),
        ({HOSTS_ENV: "a:1,a:1", INDEX_ENV: "0"}, "twice"),
        ({HOSTS_ENV: "t:2222", COUNT_ENV: "2", INDEX_ENV: "0"}, "lists 1 worker(s)"),
        ({HOSTS_ENV: "t-{index}.t", COUNT_ENV: "2", INDEX_ENV: "0"}, "not host:port"),
        ({HOSTS_ENV: "a:1,b:99999", INDEX_ENV: "0"}, "not host:port"),
    ],
)
def test_cluster_variables_that_describe_no_cluster_are_refused(
    env: dict[str, str], message: str
) -> None:
    """Refused with a one-line TrainingError (exit status 2), never guessed at: a worker with
    a wrong index or host list would wait for peers that never come."""
    with pytest.raises(ClusterError) as error:
        tf_config_from_env(env)
    assert message in str(error.value)


def test_tf_config_wins_over_the_cluster_variables() -> None:
    given = {"cluster": {"worker": ["x:1", "y:2"]}, "task": {"type": "worker", "index": 1}}
    derived_from = {HOSTS_ENV: "a:1,b:2", INDEX_ENV: "0"}
    assert resolve_tf_config({TF_CONFIG: json.dumps(given), **derived_from}) == (given, False)
    assert resolve_tf_config(derived_from) == (tf_config_from_env(derived_from), True)
    assert resolve_tf_config({INDEX_ENV: "1"}) == (None, False)  # an Indexed Job of its own
    assert resolve_tf_config({TF_CONFIG: "", INDEX_ENV: "1"}) == (None, False)
    with pytest.raises(ClusterError, match="not JSON"):
        resolve_tf_config({TF_CONFIG: "{worker"})


@pytest.mark.parametrize(("index", "chief"), [("0", True), ("1", False)])
def test_worker_0_of_the_derived_cluster_is_the_chief_and_tensorflow_sees_it(
    monkeypatch: pytest.MonkeyPatch, index: str, chief: bool
) -> None:
    from training.distributed import export_tf_config, is_chief

    for name in CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(HOSTS_ENV, "train-{index}.train:2222")
    monkeypatch.setenv(COUNT_ENV, "2")
    monkeypatch.setenv(INDEX_ENV, index)
    assert is_chief() is chief  # before TF_CONFIG is set, as after
    config = export_tf_config()
    assert config is not None and json.loads(os.environ[TF_CONFIG]) == config
    assert config["task"] == {"type": "worker", "index": int(index)}
    assert is_chief() is chief


def test_the_loop_gives_the_same_weights_under_any_one_host_strategy() -> None:
    """No code changes between strategies: mirrored over this host's devices fits exactly
    what the default strategy fits."""
    import tensorflow as tf

    from training import distributed, loop

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=600)).astype(np.float32)
    rows = loop.TrainingRows(
        chunks=loop.array_chunks(x[:500], y[:500], chunk_rows=128),
        count=500,
        input_width=4,
        validation=lambda: iter([(x[500:], y[500:])]),
    )
    target = RegressionTarget(name="y", mean=0.0, std=1.0)
    params = Hyperparameters(epochs=4, batch_size=50, seed=3).for_rows(500)
    plain = loop.fit(tf.distribute.get_strategy(), rows, target, params)
    mirrored = loop.fit(distributed.make_strategy("mirrored"), rows, target, params)
    assert plain.history["val_loss"][-1] < plain.history["val_loss"][0]
    for key in ("loss", "val_loss"):
        assert plain.history[key] == pytest.approx(mirrored.history[key])
    for a, b in zip(plain.model.get_weights(), mirrored.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_two_workers_on_loopback_write_one_bundle_that_serves(
    messy_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    shards = write_shards(frame, tmp_path / "shards", parts=3)
    root = tmp_path / "models"
    ports = [free_port(), free_port()]
    argv = [
        sys.executable,
        "-m",
        "training",
        "--data",
        str(shards),
        "--target",
        "label",
        "--categorical",
        "rooms",
        "--drop",
        ",".join(MESSY_DROP["label"]),
        "--distribute",
        "multi-worker",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--model-dir",
        str(root),
        "--model-name",
        "cluster",
    ]
    results = run_workers(argv, [{"TF_CONFIG": tf_config(ports, i)} for i in range(2)])
    for status, _, err in results:
        assert status == 0, err[-3000:]
    outputs = [(out, err) for _, out, err in results]
    (chief_out, chief_err), (worker_out, worker_err) = outputs
    assert "2 replica(s) in sync" in chief_err and "2 replica(s) in sync" in worker_err
    digests = [re.findall(r"weights sha256 (\w+)", err) for _, err in outputs]
    assert len(digests[0]) == 1 and digests[0] == digests[1], "the workers ended apart"
    assert worker_out == ""
    assert "not the chief" in worker_err

    assert sorted(p.name for p in (root / "cluster").iterdir()) == ["1"]
    version = root / "cluster" / "1"
    assert chief_out.strip().splitlines()[-1] == str(version)
    for part in (SAVED_MODEL_DIR, LITERT_FILE, STATS_FILE, METADATA_FILE):
        assert (version / part).exists(), part
    meta = read_metadata(version)
    assert (meta.training["distribute"], meta.training["streamed"]) == ("multi-worker", True)
    assert meta.classes == ["high", "low", "mid"]

    # It serves what the exported model gives offline, for the raw cells a client sends.
    rows, clean = messy_test_rows(messy_csv, "label")
    with serve(root, "cluster") as client:
        body = post_rows(client, rows)
    offline = offline_predictions(version, clean)
    assert offline.probabilities is not None
    assert body["predictions"] == offline.values
    np.testing.assert_allclose(body["probabilities"], offline.probabilities, rtol=1e-5, atol=1e-7)


def test_in_memory_data_train_under_mirrored_too(diabetes_csv: Path, tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.data import load_dataset, split_dataset
    from training.pipeline import run

    version = run(
        TrainConfig(
            data=diabetes_csv,
            distribute="mirrored",
            model_dir=tmp_path,
            model_name="mirrored",
            params=Hyperparameters(epochs=40, seed=5),
        )
    )
    assert version is not None
    meta = read_metadata(version)
    assert (meta.training["distribute"], meta.training["streamed"]) == ("mirrored", False)
    in_memory = split_dataset(load_dataset(diabetes_csv, "target"), seed=5)
    assert (meta.rows.train, meta.rows.test) == (len(in_memory.train), len(in_memory.test))
    assert meta.test.metrics["r2"] > meta.baselines["trivial"].metrics["r2"] + 0.2
