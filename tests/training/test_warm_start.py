"""Retraining: a warm start from a published version, and the promotion gate before publishing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from app.bundle import (
    MODEL_CARD_FILE,
    REPORT_DIR,
    SAVED_MODEL_DIR,
    STATS_FILE,
    Lineage,
    list_versions,
    read_metadata,
)
from tests.helpers.service import serve
from training.cli import NOT_PROMOTED, main

QUIET = ["--log-level", "warning"]


def frame(rows: int, seed: int, *, moved: bool) -> pd.DataFrame:
    """A nonlinear target of two numbers and a colour; `moved`: `a` shifted, `b`'s effect
    larger, and a colour the first set never had."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5 if moved else 0.0, 1.0, rows)
    b = rng.normal(0.0, 1.0, rows)
    colours = ["red", "green", "blue", "purple"] if moved else ["red", "green", "blue"]
    colour = rng.choice(colours, rows)
    offset = pd.Series(colour).map({"red": 0.0, "green": 1.0, "blue": -1.0, "purple": 2.0})
    y = 2 * np.sin(a) + (1.3 if moved else 1.0) * b**2 + offset.to_numpy()
    return pd.DataFrame({"a": a, "b": b, "colour": colour, "y": y + rng.normal(0, 0.1, rows)})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("retrain")
    paths = {"old": folder / "old.csv", "new": folder / "new.csv"}
    frame(3000, 1, moved=False).to_csv(paths["old"], index=False)
    frame(3000, 2, moved=True).to_csv(paths["new"], index=False)
    return paths


@pytest.fixture(scope="module")
def parent_root(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """Model `m` version 1, trained on the old data."""
    root = tmp_path_factory.mktemp("models")
    args = ["--data", str(data["old"]), "--target", "y", "--model-dir", str(root)]
    assert main([*args, "--model-name", "m", "--epochs", "40", *QUIET]) == 0
    return root


@pytest.fixture
def root(tmp_path: Path, parent_root: Path) -> Path:
    shutil.copytree(parent_root, tmp_path / "models")
    return tmp_path / "models"


def train(root: Path, data: Path, *flags: str) -> int:
    args = ["--data", str(data), "--target", "y", "--model-dir", str(root), "--model-name", "m"]
    return main([*args, *flags, *QUIET])


def weights(version_dir: Path) -> list[np.ndarray]:
    loaded = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR))
    return [v.numpy() for v in loaded.variables]


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
def test_a_warm_start_begins_at_the_parent_and_records_it(
    root: Path, data: dict[str, Path], streamed: bool
) -> None:
    # A step too small to move the weights: what comes out is what went in. No --target: the
    # parent's is the default.
    flags = ["--warm-start", "m", "--epochs", "1", "--learning-rate", "1e-12"]
    args = ["--data", str(data["new"]), "--model-dir", str(root), "--model-name", "m"]
    assert main([*args, *flags, *QUIET, *(["--stream"] if streamed else [])]) == 0
    parent, child = root / "m" / "1", root / "m" / "2"
    # The parent's statistics and vocabularies, byte for byte: `purple` is out of vocabulary.
    assert (child / STATS_FILE).read_bytes() == (parent / STATS_FILE).read_bytes()
    for before, after in zip(weights(parent), weights(child), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-6)
    metadata = read_metadata(child)
    assert metadata.parent == Lineage(
        name="m",
        version=1,
        data_source=str(data["old"]),
        data_sha256=hashlib.sha256(data["old"].read_bytes()).hexdigest(),
    )
    assert metadata.data.source == str(data["new"])
    card = (child / REPORT_DIR / MODEL_CARD_FILE).read_text()
    assert "Warm-started from m version 1" in card
    with serve(root, "m") as client:
        assert client.get("/model").json()["parent"] == metadata.parent.model_dump()


def test_fine_tuning_moves_the_parent_towards_the_new_data(
    root: Path, data: dict[str, Path]
) -> None:
    parent_on_new = _champion_score(root, data)
    assert train(root, data["new"], "--warm-start", "m/1") == 0
    child = read_metadata(root / "m" / "2")
    assert child.training["epochs"] == 40  # a fifth of the 200 epochs small data gets cold
    assert child.training["learning_rate"] == pytest.approx(1e-3 / 3)
    assert child.test.metrics["r2"] > parent_on_new


def _champion_score(root: Path, data: dict[str, Path]) -> float:
    """Version 1's R² on the new data's test rows, as the promotion gate scores it while it is
    the newest."""
    from training.data import load_dataset, split_dataset
    from training.promotion import Champion

    champion = Champion.of(root / "m")
    assert champion is not None and champion.version == 1
    dataset = load_dataset(data["new"], "y", categorical=["colour"])
    test = split_dataset(dataset, 42).test
    columns = {name: test[name].to_numpy() for name in dataset.features}
    score = champion.score(*champion.inputs([(columns, test["y"].to_numpy())], "y"))
    return score.evaluation.metrics["r2"]


def test_data_that_does_not_match_the_parent_is_refused_with_every_difference(
    root: Path, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = pd.read_csv(data["new"]).drop(columns="b")
    odd = odd.assign(extra=np.arange(len(odd)) % 3, a=[f"t{i % 7}" for i in range(len(odd))])
    path = tmp_path / "odd.csv"
    odd.to_csv(path, index=False)
    assert train(root, path, "--warm-start", "m") == 2
    error = capsys.readouterr().err
    assert "does not match the features of m version 1" in error
    assert "missing: b" in error
    assert "not among the parent's features (drop them with --drop): extra" in error
    assert "numbers in the parent, text here: a" in error
    assert list_versions(root / "m") == [1]


def test_a_parent_that_does_not_exist_is_named(
    root: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(root, data["new"], "--warm-start", "m/9") == 2
    assert "--warm-start m/9" in capsys.readouterr().err
    assert train(root, data["new"], "--warm-start", "m", "--cv", "3") == 2
    assert "--cv" in capsys.readouterr().err


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
def test_the_gate_refuses_a_worse_candidate_and_the_champion_stays_served(
    root: Path, data: dict[str, Path], streamed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    barely = ["--epochs", "1", "--learning-rate", "1e-6", *(["--stream"] if streamed else [])]
    before = set(data["new"].parent.iterdir())
    assert train(root, data["new"], "--promote-if-better", *barely) == NOT_PROMOTED
    assert list_versions(root / "m") == [1]
    assert not [p for p in (root / "m").iterdir() if p.name.startswith(".")]
    error = capsys.readouterr().err
    assert "not published, refused: candidate r2 " in error
    assert "champion (version 1) " in error
    (report_path,) = set(data["new"].parent.iterdir()) - before
    assert f"report: {report_path}" in error
    assert report_path.name.startswith("new.csv.promotion-m-")
    report = json.loads(report_path.read_text())
    report_path.unlink()  # the module's data directory is shared
    assert report["decision"] == "refused" and report["published"] is None
    assert report["candidate"] < report["champion"] and report["champion_version"] == 1
    assert report["rows"] > 0
    with serve(root, "m") as client:
        assert client.get("/model").json()["version"] == 1


def test_the_gate_publishes_a_better_candidate_with_both_scores(
    root: Path, data: dict[str, Path]
) -> None:
    before = set(data["new"].parent.iterdir())
    champion_score = _champion_score(root, data)
    assert train(root, data["new"], "--warm-start", "m", "--promote-if-better") == 0
    (report_path,) = set(data["new"].parent.iterdir()) - before
    report = json.loads(report_path.read_text())
    report_path.unlink()
    promotion = read_metadata(root / "m" / "2").promotion
    assert promotion is not None
    assert (promotion.metric, promotion.champion_version, promotion.margin) == ("r2", 1, 0.0)
    assert promotion.champion is not None and promotion.candidate >= promotion.champion
    assert promotion.champion == pytest.approx(champion_score, abs=1e-9)
    assert report["decision"] == "promoted" and report["published"] == str(root / "m" / "2")
    assert promotion.rows == read_metadata(root / "m" / "2").rows.test


def test_the_margin_lets_a_slightly_worse_candidate_through(
    root: Path, data: dict[str, Path]
) -> None:
    barely = ["--epochs", "1", "--learning-rate", "1e-6"]
    assert train(root, data["new"], "--promote-if-better", "--promote-margin", "100", *barely) == 0
    promotion = read_metadata(root / "m" / "2").promotion
    assert promotion is not None and promotion.champion is not None
    assert promotion.candidate < promotion.champion
    for leftover in data["new"].parent.glob("new.csv.promotion-*"):
        leftover.unlink()
