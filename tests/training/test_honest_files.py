"""Files as people write them: a row-number column with no header is never a feature, `--drop ""`
names such columns, and identifier-like features are named in the log and on the card."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.bundle import MODEL_CARD_FILE, REPORT_DIR, read_metadata
from tests.helpers.data import SEED, write_shards
from training.cli import parse_args
from training.column_rules import ROW_INDEX
from training.config import Hyperparameters, TrainConfig
from training.data import load_dataset
from training.errors import TrainingError
from training.pipeline import run
from training.scan import scan_schema

ROWS = 200


def sorted_frame() -> pd.DataFrame:
    """Sorted by the target, as many exports are: the row number alone would predict it."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=ROWS)
    frame = pd.DataFrame(
        {
            "x": x,
            "code": [f"c-{i:04d}" for i in rng.permutation(ROWS)],  # unique text: an identifier
            "number": rng.permutation(ROWS) + 1000,  # unique whole numbers: an identifier too
            "income": rng.normal(50_000, 9_000, ROWS),  # unique, but real-valued: a measurement
            "y": 3 * x + rng.normal(scale=0.1, size=ROWS),
        }
    )
    return frame.sort_values("y").reset_index(drop=True)


def test_the_row_numbers_of_write_csv_are_dropped_as_a_row_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "exported.csv"
    sorted_frame().to_csv(path)  # with the index: a first column headed "", holding 0, 1, 2, ...
    assert pd.read_csv(path).columns[0] == "Unnamed: 0"
    caplog.set_level(logging.WARNING)
    dataset = load_dataset(path, "y")
    assert "Unnamed: 0" not in dataset.features
    assert dataset.summary.dropped_columns["Unnamed: 0"] == ROW_INDEX
    assert any("Unnamed: 0 (row index" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "cells", [[5, 3, 9, 1] * 50, list(range(0, 400, 2)), [*range(100), *range(100)]]
)
def test_a_blank_headed_column_that_does_not_count_rows_stays(
    tmp_path: Path, cells: list[int]
) -> None:
    frame = sorted_frame().assign(**{"": cells})[["", "x", "y"]]
    path = tmp_path / "blank.csv"
    frame.to_csv(path, index=False)
    assert "Unnamed: 0" in load_dataset(path, "y").features


def test_drop_empty_names_the_columns_without_a_header(tmp_path: Path) -> None:
    assert parse_args(["--drop", ""]).drop == [""]
    path = tmp_path / "blank.csv"
    sorted_frame().assign(**{"": [7, 1, 3, 2] * 50})[["", "x", "y"]].to_csv(path, index=False)
    dataset = load_dataset(path, "y", drop=("",))
    assert dataset.summary.dropped_columns == {"Unnamed: 0": "dropped by --drop"}
    plain = tmp_path / "plain.csv"
    sorted_frame().to_csv(plain, index=False)
    with pytest.raises(TrainingError, match=r"--drop column '' not found in .*; columns: x, code"):
        load_dataset(plain, "y", drop=("",))


def test_identifier_like_features_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data.csv"
    sorted_frame().to_csv(path, index=False)
    caplog.set_level(logging.WARNING)
    assert load_dataset(path, "y").summary.identifiers == ["code", "number"]
    assert any("every value differs in code, number" in r.message for r in caplog.records)


def test_streamed_data_are_read_the_same_way(tmp_path: Path) -> None:
    frame = sorted_frame()
    # Each shard written with its own index, counting from 0 again: still row numbers.
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, ROWS, 70)):
        frame.iloc[start : start + 70].reset_index(drop=True).to_csv(shards / f"part-{i}.csv")
    schema = scan_schema(
        str(shards), "y", task="auto", categorical=(), drop=(), seed=SEED, chunk_rows=37
    )
    blank = next(c for c in schema.summary.dropped_columns)
    assert schema.summary.dropped_columns[blank] == ROW_INDEX
    assert blank not in schema.features
    assert schema.summary.identifiers == ["code", "number"]
    # And --drop "" drops it in the stream too.
    plain = write_shards(frame.assign(**{"": [4, 2] * 100}), tmp_path / "p", parts=2)
    dropped = scan_schema(
        str(plain), "y", task="auto", categorical=(), drop=("",), seed=SEED, chunk_rows=37
    ).summary.dropped_columns
    assert list(dropped.values()) == ["dropped by --drop"]


def test_the_card_names_identifier_like_features(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    sorted_frame().to_csv(path)
    config = TrainConfig(
        data=path,
        target="y",
        model_dir=tmp_path / "models",
        model_name="m",
        params=Hyperparameters(epochs=2, seed=SEED),
    )
    version = run(config)
    assert version is not None
    metadata = read_metadata(version)
    assert metadata.data.identifiers == ["code", "number"]
    assert "Unnamed: 0" not in metadata.features
    card = (version / REPORT_DIR / MODEL_CARD_FILE).read_text()
    assert "Every value differs in code, number" in card
    assert f"<td>Unnamed: 0</td><td>{ROW_INDEX}</td>" in card
