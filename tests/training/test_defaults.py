"""Hyperparameters follow the number of training rows unless given; the run records its cost."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.bundle import read_metadata
from training.config import Hyperparameters, TrainConfig
from training.pipeline import run


@pytest.mark.parametrize(
    ("rows", "batch", "learning_rate", "epochs", "patience", "steps_per_call"),
    [
        (283, 32, 1e-3, 200, 20, 1),  # diabetes' training split: exactly the old defaults
        (9_999, 32, 1e-3, 200, 20, 32),
        (10_000, 64, 1.4142e-3, 200, 20, 19),
        (20_000, 128, 2e-3, 100, 10, 19),
        (100_000, 512, 3e-3, 20, 3, 24),
        (640_000, 1024, 3e-3, 10, 3, 32),
        (20_000_000, 1024, 3e-3, 10, 3, 32),
    ],
)
def test_the_rule_scales_with_the_rows(
    rows: int, batch: int, learning_rate: float, epochs: int, patience: int, steps_per_call: int
) -> None:
    plan = Hyperparameters().for_rows(rows)
    assert (plan.batch_size, plan.epochs, plan.patience) == (batch, epochs, patience)
    assert plan.learning_rate == pytest.approx(learning_rate, rel=1e-4)
    assert plan.steps_per_execution == steps_per_call
    assert plan.by_rule == ("epochs", "batch_size", "learning_rate", "patience")


def test_every_given_value_wins_over_the_rule() -> None:
    given = Hyperparameters(epochs=7, batch_size=32, learning_rate=5e-4, patience=2, l2=0.0)
    plan = given.for_rows(1_000_000)
    assert (plan.epochs, plan.batch_size, plan.learning_rate, plan.patience, plan.l2) == (
        7, 32, 5e-4, 2, 0.0
    )  # fmt: skip
    assert plan.by_rule == ()
    # A given batch still sets the learning rate the rule derives from it.
    assert Hyperparameters(batch_size=128).for_rows(1_000_000).learning_rate == pytest.approx(2e-3)


def test_the_run_records_its_hyperparameters_and_cost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = TrainConfig(
        data="sklearn:diabetes",
        model_dir=tmp_path,
        model_name="m",
        params=Hyperparameters(epochs=3, seed=1),
    )
    version = run(config)
    assert version is not None
    training = read_metadata(version).training
    assert (training["batch_size"], training["epochs"], training["patience"]) == (32, 3, 20)
    assert training["by_rule"] == "batch_size, learning_rate, patience"
    phases = ["read", "statistics", "fit", "evaluation", "export", "report"]
    seconds = [training[f"seconds_{p}"] for p in phases]
    assert all(isinstance(s, float) for s in seconds), seconds
    # Tracing, exporting and plotting take real time even on 442 rows.
    assert all(training[f"seconds_{p}"] > 0.05 for p in ("fit", "export", "report"))  # type: ignore[operator]
    wall = training["wall_seconds"]
    assert isinstance(wall, float)
    assert sum(seconds) <= wall  # type: ignore[arg-type]
    cpu, peak = training["cpu_seconds"], training["peak_rss_mb"]
    assert isinstance(cpu, float) and cpu > 0
    assert isinstance(peak, float) and peak > 100  # TensorFlow alone takes more
    speed = training["train_rows_per_second"]
    assert isinstance(speed, float) and speed > 0
    assert training["epochs_run"] == 3
    assert any("set by the rule: batch_size, learning_rate, patience" in r.message
               for r in caplog.records)  # fmt: skip
