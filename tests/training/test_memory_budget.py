"""One file too large to load is streamed without being asked, and the log says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.bundle import read_metadata
from training.cli import parse_args
from training.config import Hyperparameters, TrainConfig
from training.errors import TrainingError
from training.memory import in_memory_cost, parse_size
from training.pipeline import run


@pytest.mark.parametrize(
    ("text", "size"),
    [("1000", 1000), ("4G", 4 * 1024**3), ("512MB", 512 * 1024**2), ("1.5GiB", 1536 * 1024**2),
     (" 64 k ", 64 * 1024)],
)  # fmt: skip
def test_sizes_are_read_as_people_write_them(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(text.lower()) == size


@pytest.mark.parametrize("text", ["", "lots", "4X", "-1G", "G"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)
    with pytest.raises(SystemExit):
        parse_args(["--memory-budget", text])


def test_a_csv_costs_fifteen_times_its_size_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n" + "1,2\n" * 1000)
    assert in_memory_cost(path) == 15 * (4 + 4 * 1000)


def config_for(data: Path, root: Path, budget: int | None, **options: object) -> TrainConfig:
    return TrainConfig(
        data=data,
        target="target",
        model_dir=root,
        model_name="m",
        memory_budget=budget,
        params=Hyperparameters(epochs=2, seed=3),
        **options,  # type: ignore[arg-type]
    )


def test_a_file_over_the_budget_is_streamed(
    diabetes_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    version = run(config_for(diabetes_csv, tmp_path, budget=100_000))
    assert version is not None
    assert read_metadata(version).training["streamed"] is True
    assert any(
        "over the memory budget of 0.00 GB (--memory-budget); streaming it instead" in r.message
        for r in caplog.records
    )


def test_a_file_within_the_budget_is_read_in_memory(
    diabetes_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    version = run(config_for(diabetes_csv, tmp_path, budget=None))
    assert version is not None
    assert read_metadata(version).training["streamed"] is False
    assert any("reading it in memory" in r.message for r in caplog.records)


def test_cross_validation_over_the_budget_is_a_clear_error(
    diabetes_csv: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="--cv needs the data in memory"):
        run(config_for(diabetes_csv, tmp_path, budget=1000, cv_folds=3))
