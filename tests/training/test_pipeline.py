"""A real training run: the bundle it writes, statistics from the training split only, metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app.bundle import SAVED_MODEL_DIR, read_metadata, read_stats
from tests.conftest import SEED
from training.cli import main
from training.data import features_matrix, load_dataset, split_dataset


def test_bundle_layout_and_metadata(version_dir: Path, diabetes_csv: Path) -> None:
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "metadata.json",
        "preprocessing.json",
        "saved_model",
    ]
    assert (version_dir / SAVED_MODEL_DIR / "saved_model.pb").is_file()
    meta = read_metadata(version_dir)
    assert (meta.name, meta.version, meta.target) == ("diabetes", 1, "target")
    assert meta.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert meta.rows.train + meta.rows.validation + meta.rows.test == 442
    assert meta.data_source == str(diabetes_csv)
    assert meta.data_sha256 == hashlib.sha256(diabetes_csv.read_bytes()).hexdigest()
    assert meta.tensorflow_version == tf.__version__
    assert meta.training["seed"] == SEED
    assert json.loads((version_dir / "metadata.json").read_text())["created_at"].endswith("Z")


def test_statistics_come_from_the_training_split_only(
    version_dir: Path, diabetes_csv: Path
) -> None:
    stats = read_stats(version_dir)
    dataset = load_dataset(diabetes_csv, "target")
    split = split_dataset(dataset, SEED)
    train = features_matrix(split.train, dataset.features)
    train[np.isinf(train)] = np.nan
    np.testing.assert_allclose(stats.means, np.nanmean(train, axis=0), rtol=1e-12)
    assert stats.target_mean == pytest.approx(split.train["target"].mean(), rel=1e-12)
    everything = features_matrix(dataset.frame, dataset.features)
    everything[np.isinf(everything)] = np.nan
    assert not np.allclose(stats.means, np.nanmean(everything, axis=0), rtol=1e-6)


def test_metrics_are_test_split_scores_in_real_units(version_dir: Path, diabetes_csv: Path) -> None:
    stats = read_stats(version_dir)
    dataset = load_dataset(diabetes_csv, "target")
    test = split_dataset(dataset, SEED).test
    serve = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR)).signatures["serving_default"]
    x = stats.transform(features_matrix(test, dataset.features))
    predicted = stats.unscale_target(next(iter(serve(tf.constant(x)).values())).numpy().ravel())
    errors = test["target"].to_numpy() - predicted
    metrics = read_metadata(version_dir).metrics
    assert metrics.mae == pytest.approx(np.mean(np.abs(errors)), rel=1e-5)
    assert metrics.rmse == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-5)
    assert metrics.mse == pytest.approx(metrics.rmse**2, rel=1e-9)
    assert metrics.r2 > 0.2, "even a short run learns something on this data"


def test_default_data_is_the_bundled_diabetes_set() -> None:
    dataset = load_dataset(None, "target")
    assert dataset.source == "sklearn:load_diabetes"
    assert dataset.frame.shape == (442, 11)


def test_cli_publishes_next_version_and_prints_its_path_last(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes_csv: Path
) -> None:
    (tmp_path / "m" / "4").mkdir(parents=True)
    code = main(
        [
            "--data",
            str(diabetes_csv),
            "--model-dir",
            str(tmp_path),
            "--model-name",
            "m",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--learning-rate",
            "0.01",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "m" / "5")
    meta = read_metadata(tmp_path / "m" / "5")
    assert meta.version == 5
    assert (meta.training["epochs"], meta.training["batch_size"]) == (2, 64)
    assert meta.training["learning_rate"] == 0.01
