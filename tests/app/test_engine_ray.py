"""`python -m app.score --engine ray`: the same answers as the local engine and POST /predict,
row for row by id, for CSV and Parquet files, shards and a classifier; CSV cells read as the
local engine reads them; bad input refused with the scorer's one line. One local Ray for the
module, started and stopped by the engine's own code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import ray.data

from app.engines import ray as engine
from tests.app.test_score import feature_columns, predict_csv, run
from tests.helpers.data import MESSY_DROP, write_shards

pytestmark = [
    # Ray Data's own: copying its DataContext, and pandas 3 on its blocks.
    pytest.mark.filterwarnings("ignore:`use_:DeprecationWarning:ray.data.context"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]
TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[int]:
    """The engine's own local Ray, for the module: `score` runs on it instead of starting one
    per call. Stopped at the end."""
    assert not ray.is_initialized()
    with engine._ray() as (cpus, started):
        assert started
        yield cpus
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def diabetes_rows(diabetes_csv: Path) -> pd.DataFrame:
    """The diabetes file's feature cells as text (blanks, `inf`), after an id column."""
    frame = pd.read_csv(diabetes_csv, dtype=str, keep_default_na=False).drop(columns="target")
    frame.insert(0, "key", [f"k{i:03d}" for i in range(len(frame))])
    return frame


def read_output(path: Path) -> pd.DataFrame:
    """The local engine's file, or the Ray engine's part files in the order of their names."""
    if path.is_file():
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    parts = sorted(p for p in path.iterdir() if not p.name.startswith("_"))
    assert parts, f"no part files in {path}"
    assert (path / "_SUCCESS").exists()
    if path.suffix == ".parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)


def score_both(
    source: Path, tmp_path: Path, suffix: str, *options: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the local engine's output, the Ray engine's) for `source`, `--chunk-rows 100` (several
    batches, both actors)."""
    local, distributed = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    options = (*options, "--chunk-rows", 100)
    assert run(source, local, *options) == 0
    assert run(source, distributed, *options, "--engine", "ray") == 0
    return read_output(local), read_output(distributed)


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same columns, ids and predictions, row for row (and in the same order)."""
    assert list(got.columns) == list(expected.columns)
    assert list(got.iloc[:, 0]) == list(expected.iloc[:, 0])
    np.testing.assert_allclose(got.iloc[:, 1:], expected.iloc[:, 1:], rtol=TOL, atol=TOL)


def test_csv_cells_arrive_as_the_local_engine_reads_them(tmp_path: Path) -> None:
    source = tmp_path / "cells.csv"
    source.write_text(
        "\ufeffid, a ,b,c\n"
        'r1,,NA,"1,5"\n'
        'r2,"",n/a, 2 \n'
        "r3,null,None,#N/A\n"
        'r4,inf,-inf,"say ""x"""\n'
        "r5,NaN,nan,é\n",
        encoding="utf-8",
    )
    names = engine._csv_header([str(source)])
    assert names == ["id", " a ", "b", "c"]
    read = ray.data.read_csv(str(source), convert_options=engine._as_text(names)).to_pandas()
    local = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert list(read.columns) == list(local.columns)
    assert read.astype(object).to_numpy().tolist() == local.astype(object).to_numpy().tolist()
    assert read.iloc[0].tolist() == ["r1", "", "NA", "1,5"]


def test_diabetes_csv_equals_local_and_predict(
    model_root: Path, diabetes_rows: pd.DataFrame, diabetes_csv: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    diabetes_rows.to_csv(source, index=False)
    caplog.set_level(logging.INFO, logger=engine.__name__)
    local, distributed = score_both(source, tmp_path, ".parquet", "--model-dir", model_root,
                                    "--model-name", "diabetes", "--id-column", "key")  # fmt: skip
    assert list(distributed.columns) == ["key", "prediction"]
    assert list(distributed["key"]) == list(diabetes_rows["key"])  # every row, in order
    assert_same_rows(distributed, local)
    served = predict_csv(model_root, "diabetes", feature_columns(diabetes_csv, (), "target"))
    np.testing.assert_allclose(distributed["prediction"], served["prediction"], rtol=TOL, atol=TOL)
    assert any(r.getMessage().startswith("engine start-up: ") for r in caplog.records)


def test_parquet_input_keeps_its_types(
    model_root: Path, diabetes_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(diabetes_csv).drop(columns="target")  # floats, NaN and inf
    frame.insert(0, "key", range(100, 100 + len(frame)))
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source)
    local, distributed = score_both(source, tmp_path, ".parquet", "--model-dir", model_root,
                                    "--model-name", "diabetes", "--id-column", "key")  # fmt: skip
    assert distributed["key"].dtype == np.int64
    assert_same_rows(distributed, local)


def test_a_directory_or_a_glob_of_shards(
    model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path
) -> None:
    whole = tmp_path / "rows.csv"
    diabetes_rows.to_csv(whole, index=False)
    shards = write_shards(diabetes_rows, tmp_path / "shards", parts=3)
    options = ("--model-dir", model_root, "--model-name", "diabetes", "--id-column", "key")
    assert run(whole, tmp_path / "local.parquet", *options) == 0
    local = read_output(tmp_path / "local.parquet")
    for name, source in (("dir", shards), ("glob", shards / "part-*.csv")):
        out = tmp_path / f"{name}.parquet"
        assert run(source, out, *options, "--engine", "ray", "--chunk-rows", 100) == 0
        assert_same_rows(read_output(out), local)  # the shards' rows in the shards' order


def test_a_classifier_equals_local_and_predict(
    model_root: Path, messy_csv: Path, tmp_path: Path
) -> None:
    local, distributed = score_both(messy_csv, tmp_path, "", "--model-dir", model_root,
                                    "--model-name", "labels", "--id-column", "id")  # fmt: skip
    assert list(distributed.columns) == [
        "id", "prediction", "probability_high", "probability_low", "probability_mid"
    ]  # fmt: skip
    assert list(distributed["id"]) == list(local["id"])
    assert list(distributed["prediction"]) == list(local["prediction"])
    np.testing.assert_allclose(distributed.iloc[:, 2:], local.iloc[:, 2:], rtol=TOL, atol=TOL)
    served = predict_csv(
        model_root, "labels", feature_columns(messy_csv, MESSY_DROP["label"], "label")
    )
    assert list(distributed["prediction"]) == list(served["prediction"])
    np.testing.assert_allclose(distributed.iloc[:, 2:], served.iloc[:, 1:], rtol=TOL, atol=TOL)


def test_a_bad_cell_refuses_the_job_naming_its_id(
    model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    diabetes_rows.assign(bp=[*["1"] * 300, "high", *["1"] * (len(diabetes_rows) - 301)]).to_csv(
        source, index=False
    )
    out = tmp_path / "out.parquet"
    assert run(source, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--id-column", "key", "--chunk-rows", 100, "--engine", "ray") == 2  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert "error: the row whose key is 'k300', column bp: 'high' is not a number" in err
    assert not (out / "_SUCCESS").exists()
    # An earlier output, even a failed one's, is replaced.
    good = tmp_path / "good.csv"
    diabetes_rows.to_csv(good, index=False)
    assert run(good, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--id-column", "key", "--engine", "ray") == 0  # fmt: skip
    assert len(read_output(out)) == len(diabetes_rows)


def test_a_csv_row_of_the_wrong_length_refuses_the_job_naming_its_id(
    model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    lines = diabetes_rows.to_csv(index=False).splitlines()
    lines[8] += ",7"  # the row of k007 has a cell too many
    source.write_text("\n".join(lines) + "\n")
    assert run(source, tmp_path / "out", "--model-dir", model_root, "--model-name", "diabetes",
               "--id-column", "key", "--engine", "ray") == 2  # fmt: skip
    assert "error: the row whose key is 'k007' has 12 cells, the header 11" in (
        capsys.readouterr().err.splitlines()
    )


@pytest.mark.parametrize(
    ("edit", "options", "message"),
    [
        (lambda f: f.drop(columns="bmi"), (), "the input has no column for the features bmi"),
        (lambda f: f, ("--id-column", "nope"), "no column 'nope' (--id-column)"),
    ],
)
def test_a_missing_column_refuses_the_job(
    model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], edit: object, options: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    source = tmp_path / "rows.parquet"
    edit(diabetes_rows).to_parquet(source)  # type: ignore[operator]
    assert run(source, tmp_path / "out.parquet", "--model-dir", model_root,
               "--model-name", "diabetes", "--engine", "ray", *options) == 2  # fmt: skip
    assert f"error: {message}" in capsys.readouterr().err.splitlines()


def test_an_output_that_is_not_an_earlier_one_is_refused(
    model_root: Path, diabetes_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run(diabetes_csv, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--engine", "ray") == 2  # fmt: skip
    assert "is not an earlier output" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
