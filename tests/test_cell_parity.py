"""One cell rule everywhere: a table of spellings read alike by the contract, training (CSV and
Parquet, in memory and streamed), the CSV, split-JSON and v2 BYTES bodies and the batch scorer,
with the same predictions as the JSON route and the offline transform."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.bundle import (
    NotANumber,
    NumericFeature,
    category_key,
    read_number,
    read_numbers,
    read_stats,
)
from app.score import main as score_main
from tests.helpers.data import SEED
from tests.helpers.offline import offline_predictions
from tests.helpers.service import serve
from training.columns import as_numbers, as_text
from training.data import load_dataset
from training.sources import read_chunks

MISSING = None  # the reading of a missing cell
BAD = "not a number"

_WORDS = ["", "na", "n/a", "nan", "null", "none", "#n/a", "<na>"]
SPELLINGS: list[tuple[str, float | str | None]] = [
    *[(spelled, MISSING) for w in _WORDS
      for spelled in (w, w.upper(), w.title(), f"  {w}  ", f"\t{w.upper()} ")],
    (" ", MISSING), ("\u00a0", MISSING),
    ("1", 1.0), ("-2.5", -2.5), ("+3", 3.0), (" 4.25 ", 4.25), ("\u00a08\u00a0", 8.0),
    ("1e3", 1000.0), ("1.5E-2", 0.015), ("-2e+2", -200.0), (".5", 0.5), ("5.", 5.0),
    ("007", 7.0), ("0.1234567890123456789", 0.1234567890123456789),
    ("inf", math.inf), ("-inf", -math.inf), ("+Infinity", math.inf), ("INF", math.inf),
    ("-infinity", -math.inf), ("1e400", math.inf),
    ("1,000", BAD), ("1_000", BAD), ("1 000", BAD), ("\u0661\u0662\u0663", BAD),
    ("\uff11\uff12", BAD), ("0x1A", BAD), ("1e", BAD), ("--1", BAD), ("+-1", BAD),
    ("1.2.3", BAD), ("12abc", BAD), ("abc", BAD), ("\u00bd", BAD), ("infinite", BAD),
    (".", BAD), ("e5", BAD), ("N/A/", BAD),
]  # fmt: skip
GOOD = [(cell, reading) for cell, reading in SPELLINGS if reading != BAD]
BAD_CELLS = [cell for cell, reading in SPELLINGS if reading == BAD]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROW = dict(
    zip(FEATURES, [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02], strict=True)
)


def as_float(reading: float | str | None) -> float:
    assert reading != BAD
    return math.nan if reading is None else float(reading)


def assert_readings(values: np.ndarray, cells: list[tuple[str, Any]]) -> None:
    expected = np.array([as_float(r) for _, r in cells])
    np.testing.assert_array_equal(values, expected, err_msg=str([c for c, _ in cells]))


def write_csv(path: Path, columns: dict[str, list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    return path


# The contract


def test_the_scalar_rule_reads_the_table() -> None:
    for cell, reading in SPELLINGS:
        if reading == BAD:
            with pytest.raises(NotANumber):
                read_number(cell)
        else:
            assert_readings(np.array([read_number(cell)]), [(cell, reading)])


def test_the_column_rule_equals_the_scalar_rule() -> None:
    assert_readings(read_numbers([cell for cell, _ in GOOD]), GOOD)
    for cell in BAD_CELLS:
        column = ["1", " NA ", cell, "2", "also not a number"]
        with pytest.raises(NotANumber) as first:
            read_numbers(column)
        assert (first.value.cell, first.value.index) == (cell, 2)


# Training


def training_column(path: Path) -> pd.Series:
    """Column x as training reads it from a file, in memory."""
    dataset = load_dataset(path, target="y")
    assert "x" in dataset.features, dataset.summary.dropped_columns
    column: pd.Series = dataset.frame["x"]
    return column


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_training_in_memory_reads_the_table(tmp_path: Path, suffix: str) -> None:
    cells = [cell for cell, _ in GOOD]
    frame = pd.DataFrame({"x": cells, "y": np.arange(len(cells), dtype=float)})
    path = tmp_path / f"good.{suffix}"
    if suffix == "csv":
        write_csv(path, {"x": cells, "y": list(frame["y"])})
    else:
        frame.to_parquet(path)
    column = training_column(path)
    assert column.dtype == np.float64  # numeric
    assert_readings(column.to_numpy(), GOOD)


@pytest.mark.parametrize("cell", BAD_CELLS)
def test_one_cell_that_is_not_a_number_makes_training_read_the_column_as_text(
    tmp_path: Path, cell: str
) -> None:
    cells = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", cell]
    path = write_csv(tmp_path / "bad.csv", {"x": cells, "y": list(range(len(cells)))})
    assert load_dataset(path, target="y").summary.columns["x"].kind == "categorical"


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_streamed_training_reads_the_table(tmp_path: Path, suffix: str) -> None:
    cells = [cell for cell, _ in SPELLINGS]
    columns: dict[str, list[Any]] = {"x": cells, "y": list(range(len(cells)))}
    path = tmp_path / f"shard.{suffix}"
    if suffix == "csv":
        write_csv(path, columns)
    else:
        pd.DataFrame(columns).to_parquet(path)
    chunks = list(read_chunks([path], seed=SEED, chunk_rows=7))
    column = pd.concat([c.frame["x"] for c in chunks], ignore_index=True)
    assert len(column) == len(SPELLINGS)
    good = [reading != BAD for _, reading in SPELLINGS]
    numbers = as_numbers(column[good])
    assert numbers is not None
    assert_readings(numbers.to_numpy(), GOOD)
    for cell_column in (column[[i]] for i, g in enumerate(good) if not g):
        assert as_numbers(cell_column) is None, cell_column.iloc[0]


# Serving: every body, the same predictions as JSON rows with the readings


def json_predictions(client: Any, readings: list[float | str | None]) -> list[float]:
    """The JSON route's answers for ROW with bmi = each reading (missing and infinite as null,
    as JSON has no infinity)."""
    rows = [
        {**ROW, "bmi": None if r is None or not math.isfinite(float(r)) else r} for r in readings
    ]
    answer = client.post("/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    predictions: list[float] = answer.json()["predictions"]
    return predictions


def csv_body(cells: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FEATURES)
    writer.writerows([[cell if f == "bmi" else ROW[f] for f in FEATURES] for cell in cells])
    return out.getvalue()


def test_every_serving_body_reads_the_table_as_json_rows_would(
    model_root: Path, tmp_path: Path
) -> None:
    cells = [cell for cell, _ in GOOD]
    with serve(model_root) as client:
        expected = json_predictions(client, [reading for _, reading in GOOD])
        by_csv = client.post(
            "/predict", content=csv_body(cells), headers={"content-type": "text/csv"}
        )
        split = {
            "columns": FEATURES,
            "data": [[cell if f == "bmi" else ROW[f] for f in FEATURES] for cell in cells],
        }
        by_split = client.post("/predict", json=split)
        tensors = [
            {"name": f, "shape": [len(cells)], "datatype": "BYTES" if f == "bmi" else "FP64",
             "data": cells if f == "bmi" else [ROW[f]] * len(cells)}
            for f in FEATURES
        ]  # fmt: skip
        by_v2 = client.post("/v2/models/diabetes/infer", json={"inputs": tensors})
    for answer in (by_csv, by_split, by_v2):
        assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(by_csv.json()["predictions"], expected, rtol=1e-6)
    np.testing.assert_allclose(by_split.json()["predictions"], expected, rtol=1e-6)
    np.testing.assert_allclose(by_v2.json()["outputs"][0]["data"], expected, rtol=1e-6)

    columns = {f: cells if f == "bmi" else [ROW[f]] * len(cells) for f in FEATURES}
    source = write_csv(tmp_path / "in.csv", columns)
    out = tmp_path / "out.csv"
    argv = [str(source), str(out), "--model-dir", str(model_root), "--model-name", "diabetes"]
    assert score_main(argv) == 0
    np.testing.assert_allclose(pd.read_csv(out)["prediction"], expected, rtol=1e-6)

    # And the offline transform with the SavedModel agrees with all of them.
    offline = pd.DataFrame([{**ROW, "bmi": as_float(r)} for _, r in GOOD])
    reference = offline_predictions(model_root / "diabetes" / "1", offline).values
    np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("cell", BAD_CELLS)
def test_every_serving_body_refuses_a_cell_that_is_not_a_number(
    model_root: Path, tmp_path: Path, cell: str
) -> None:
    with serve(model_root) as client:
        by_csv = client.post(
            "/predict", content=csv_body(["1", cell]), headers={"content-type": "text/csv"}
        )
        split = {"columns": FEATURES, "data": [[cell if f == "bmi" else ROW[f] for f in FEATURES]]}
        by_split = client.post("/predict", json=split)
        tensors = [
            {"name": f, "shape": [1], "datatype": "BYTES" if f == "bmi" else "FP64",
             "data": [cell] if f == "bmi" else [ROW[f]]}
            for f in FEATURES
        ]  # fmt: skip
        by_v2 = client.post("/v2/models/diabetes/infer", json={"inputs": tensors})
    assert by_csv.status_code == 422
    assert by_csv.json()["error"] == f"CSV line 3, column bmi: {cell!r} is not a number"
    assert by_split.status_code == 422
    assert by_split.json()["error"] == f"data[0].bmi: {cell!r} is not a number"
    assert by_v2.status_code == 400
    assert by_v2.json()["error"] == f"input 'bmi', row 0: {cell!r} is not a number"

    source = write_csv(
        tmp_path / "in.csv", {f: ["1", cell] if f == "bmi" else [ROW[f]] * 2 for f in FEATURES}
    )
    assert score_main([str(source), str(tmp_path / "o.csv"), "--model-dir", str(model_root),
                       "--model-name", "diabetes"]) == 2  # fmt: skip


def test_missing_and_infinite_cells_are_filled_with_the_training_mean(model_root: Path) -> None:
    stats = read_stats(model_root / "diabetes" / "1")
    bmi = next(f for f in stats.features if isinstance(f, NumericFeature) and f.name == "bmi")
    filled = [cell for cell, r in GOOD if r is None or math.isinf(float(r))]
    with serve(model_root) as client:
        by_csv = client.post(
            "/predict", content=csv_body(filled), headers={"content-type": "text/csv"}
        )
        at_mean = client.post("/predict", json={"instances": [{**ROW, "bmi": bmi.fill_value}]})
    expected = at_mean.json()["predictions"] * len(filled)
    np.testing.assert_allclose(by_csv.json()["predictions"], expected, rtol=1e-6)


def test_a_category_is_missing_in_the_same_spellings_in_training_and_serving() -> None:
    """Categorical cells use the same missing words: serving's `category_key` and training's
    column-wise `as_text` agree on every spelling of the table."""
    cells = [cell for cell, _ in SPELLINGS]
    missing = [reading is MISSING for _, reading in SPELLINGS]
    assert [category_key(cell) is None for cell in cells] == missing
    assert list(as_text(pd.Series(cells, dtype=object)).isna()) == missing
    assert list(as_text(pd.Series(cells, dtype="string")).isna()) == missing
