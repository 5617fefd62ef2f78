"""Real training runs: the bundle written, statistics from the training split only, metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app.bundle import (
    SAVED_MODEL_DIR,
    CategoricalFeature,
    NumericFeature,
    read_metadata,
    read_stats,
)
from tests.helpers.data import MESSY_DROP, MESSY_ROWS, SEED
from tests.helpers.offline import offline_predictions
from training.cli import main
from training.data import load_dataset, split_dataset


def test_bundle_layout_and_metadata(version_dir: Path, diabetes_csv: Path) -> None:
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "metadata.json",
        "model.tflite",
        "preprocessing.json",
        "reference.json",
        "report",
        "saved_model",
    ]
    assert (version_dir / SAVED_MODEL_DIR / "saved_model.pb").is_file()
    meta = read_metadata(version_dir)
    assert (meta.name, meta.version, meta.target, meta.task) == (
        "diabetes",
        1,
        "target",
        "regression",
    )
    assert meta.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert meta.rows.train + meta.rows.validation + meta.rows.test == 442
    assert meta.data.source == str(diabetes_csv)
    assert meta.data.sha256 == hashlib.sha256(diabetes_csv.read_bytes()).hexdigest()
    assert meta.tensorflow_version == tf.__version__
    assert meta.training["seed"] == SEED
    assert set(meta.baselines) == {"trivial", "linear", "boosting"}
    assert meta.training["baseline_rows"] == meta.rows.train
    boosting_fit = meta.training["seconds_fit_boosting"]
    assert isinstance(boosting_fit, float) and boosting_fit > 0
    assert json.loads((version_dir / "metadata.json").read_text())["created_at"].endswith("Z")


def test_statistics_come_from_the_training_split_only(
    version_dir: Path, diabetes_csv: Path
) -> None:
    stats = read_stats(version_dir)
    dataset = load_dataset(diabetes_csv, "target")
    split = split_dataset(dataset, SEED)
    means = [f.mean for f in stats.features if isinstance(f, NumericFeature)]
    train = split.train[dataset.features].to_numpy(copy=True)
    train[np.isinf(train)] = np.nan
    np.testing.assert_allclose(means, np.nanmean(train, axis=0), rtol=1e-12)
    assert stats.target.mean == pytest.approx(split.train["target"].mean(), rel=1e-12)  # type: ignore[union-attr]
    everything = dataset.frame[dataset.features].to_numpy(copy=True)
    everything[np.isinf(everything)] = np.nan
    assert not np.allclose(means, np.nanmean(everything, axis=0), rtol=1e-6)


def test_metrics_are_test_split_scores_in_real_units(version_dir: Path, diabetes_csv: Path) -> None:
    test = split_dataset(load_dataset(diabetes_csv, "target"), SEED).test
    predicted = np.asarray(offline_predictions(version_dir, test).values)
    errors = test["target"].to_numpy() - predicted
    metrics = read_metadata(version_dir).test.metrics
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-5)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-5)
    assert metrics["mse"] == pytest.approx(metrics["rmse"] ** 2, rel=1e-9)
    assert metrics["r2"] > 0.2, "even a short run learns something on this data"


def test_messy_columns_are_kinded_cleaned_and_summarised(model_root: Path, messy_csv: Path) -> None:
    meta = read_metadata(model_root / "messy" / "1")
    stats = read_stats(model_root / "messy" / "1")
    kinds = {f.name: type(f).__name__ for f in stats.features}
    assert kinds == {
        "age": "NumericFeature",
        "income": "NumericFeature",
        "colour": "CategoricalFeature",
        "member": "CategoricalFeature",
        "rooms": "CategoricalFeature",
    }
    colour = next(f for f in stats.features if f.name == "colour")
    assert isinstance(colour, CategoricalFeature)
    # Stripped, case kept as written; "purple" (2 rows) is rarer than --min-category-count.
    assert {"red", "green", "blue"} <= set(colour.vocabulary)
    assert set(colour.vocabulary) <= {"red", "green", "blue", "Red", "Green", "Blue"}
    assert "purple" not in colour.vocabulary
    member = next(f for f in stats.features if f.name == "member")
    assert isinstance(member, CategoricalFeature)
    assert sorted(member.vocabulary) == ["false", "true"]
    assert meta.data.dropped_columns == {
        "id": "dropped by --drop",
        "label": "dropped by --drop",
        "constant": "constant: every value is 7.0",
        "empty": "all values missing",
    }
    assert meta.data.dropped_missing_target == 9
    assert meta.data.rows_read == MESSY_ROWS
    assert meta.rows.train + meta.rows.validation + meta.rows.test == MESSY_ROWS - 9
    raw = load_dataset(messy_csv, "price", drop=MESSY_DROP["price"]).frame
    assert meta.data.columns["age"].missing == int((~np.isfinite(raw["age"])).sum()) > 0


def test_messy_classification_scores_against_baselines(model_root: Path) -> None:
    meta = read_metadata(model_root / "labels" / "1")
    assert meta.task == "classification"
    assert meta.classes == ["high", "low", "mid"]
    assert meta.primary_metric == "f1"
    assert set(meta.test.metrics) == {"accuracy", "precision", "recall", "f1", "log_loss"}
    matrix = np.asarray(meta.test.confusion_matrix)
    assert matrix.shape == (3, 3)
    assert matrix.sum() == meta.rows.test
    assert meta.test.metrics["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert meta.baselines["trivial"].metrics["accuracy"] < meta.test.metrics["accuracy"]
    assert meta.beats_linear_baseline == (
        meta.test.metrics["f1"] > meta.baselines["linear"].metrics["f1"]
    )


def test_default_data_is_the_bundled_diabetes_set() -> None:
    dataset = load_dataset(None, "target")
    assert dataset.summary.source == "sklearn:diabetes"
    assert dataset.frame.shape == (442, 11)
    assert dataset.task == "regression"


def test_cli_publishes_next_version_and_prints_table_and_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, diabetes_csv: Path
) -> None:
    (tmp_path / "m" / "4").mkdir(parents=True)
    code = main(
        ["--data", str(diabetes_csv), "--model-dir", str(tmp_path), "--model-name", "m",
         "--epochs", "2", "--batch-size", "64", "--learning-rate", "0.01"]
    )  # fmt: skip
    assert code == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == str(tmp_path / "m" / "5")
    assert err.splitlines()[0].split() == ["metric", "network", "boosting", "linear", "trivial"]
    assert "the network" in err and "the linear baseline on r2" in err
    meta = read_metadata(tmp_path / "m" / "5")
    ours, theirs = meta.test.metrics["r2"], meta.baselines["boosting"].metrics["r2"]
    standing = "beats" if ours > theirs else "trails"
    assert f"the network {standing} gradient boosting on r2: {ours:.4f} against {theirs:.4f}" in err
    assert meta.version == 5
    assert (meta.training["epochs"], meta.training["batch_size"]) == (2, 64)
    assert meta.training["learning_rate"] == 0.01
