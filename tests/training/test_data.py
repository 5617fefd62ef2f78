"""Reading and cleaning data: file formats, task detection, column kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import load_dataset, split_dataset


def test_parquet_and_csv_of_the_same_table_load_the_same(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.5, None, 3.0, 4.0, 5.5, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
            "flag": [True, False] * 6,
            "city": ["a", "b", "c", None, "a", "b", "c", "a", "b", "c", "a", "b"],
            "target": [float(i) ** 1.5 for i in range(12)],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    from_parquet = load_dataset(tmp_path / "t.parquet", "target")
    from_csv = load_dataset(tmp_path / "t.csv", "target")
    assert from_parquet.categorical == from_csv.categorical == ["flag", "city"]
    pd.testing.assert_frame_equal(from_parquet.frame, from_csv.frame)
    assert from_parquet.summary.columns == from_csv.summary.columns
    assert from_parquet.summary.columns["x"].missing == 1


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([1, 2, 3] * 10, "classification"),
        (["yes", "no", "no"] * 10, "classification"),
        ([True, False, False] * 10, "classification"),
        (list(range(30)), "regression"),
        ([0.5, 1.0, 1.5] * 10, "regression"),
    ],
)
def test_auto_task_detection(tmp_path: Path, values: list[object], task: str) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": np.arange(len(values)) * 1.1, "y": values}).to_csv(path, index=False)
    assert load_dataset(path, "y").task == task


def test_integer_classes_stay_integers_and_text_classes_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": range(30), "y": [3, 1, 2] * 10, "z": [" a", "b ", "c"] * 10}).to_csv(
        path, index=False
    )
    assert sorted(load_dataset(path, "y").frame["y"].unique().tolist()) == [1, 2, 3]
    assert sorted(load_dataset(path, "z", drop=["y"]).frame["z"].unique()) == ["a", "b", "c"]


def test_classification_split_is_stratified(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    labels = ["rare"] * 10 + ["common"] * 90
    pd.DataFrame({"x": range(100), "y": labels}).to_csv(path, index=False)
    split = split_dataset(load_dataset(path, "y"), seed=0)
    assert (split.test["y"] == "rare").sum() == 2
    assert (split.validation["y"] == "rare").sum() == 2
    assert (split.train["y"] == "rare").sum() == 6


def test_balanced_class_weights_make_every_class_weigh_the_same() -> None:
    from app.bundle import ClassificationTarget
    from training.model import class_weights

    y = np.array([0] * 90 + [1] * 10)
    weights = class_weights(y, ClassificationTarget(name="y", classes=["a", "b"]))
    assert weights == pytest.approx({0: 100 / 180, 1: 100 / 20})
    assert weights is not None
    assert 90 * weights[0] == pytest.approx(10 * weights[1])


CELLS = [" 42 ", "1e3", "inf", " -inf", "nan", "NA", "", "0x10", "+5", ".5", "5.", " TRUE",
         "False ", "N/A", "#N/A", "<NA>", "None", "null", "Red", " red ", "3.0", "\u00a0x\u00a0",
         "1e400", "-0", "\uff11\uff12", "1,5", "tRuE"]  # fmt: skip


@pytest.mark.parametrize("dtype", [object, "str"])
def test_column_wise_cleaning_equals_category_key_cell_by_cell(dtype: object) -> None:
    """CSV columns take a vectorised path; it must agree with the rule serving applies."""
    from app.bundle import category_key
    from training.columns import as_numbers, as_text

    column = pd.Series(CELLS, dtype=dtype)  # type: ignore[call-overload]
    expected = [category_key(cell) for cell in CELLS]
    assert [None if pd.isna(v) else v for v in as_text(column)] == expected
    for cell, key in zip(CELLS, expected, strict=True):
        pair = pd.Series([cell, "1"], dtype=dtype)  # type: ignore[call-overload]
        parsed = pd.to_numeric(pd.Series([key, "1"], dtype=object), errors="coerce")
        numeric = key is None or not np.isnan(parsed[0])
        numbers = as_numbers(pair)
        assert (numbers is not None) == numeric, cell
        if numbers is not None:
            np.testing.assert_array_equal(numbers.to_numpy(), parsed.to_numpy(dtype=float))
