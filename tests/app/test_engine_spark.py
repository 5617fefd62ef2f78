"""`python -m app.score --engine spark`: the same answers as the local engine and POST /predict,
row for row by id, for CSV and Parquet files, shards and a classifier; bad input refused with
the scorer's one line. One local[2] session for the module; one run as a command of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark import SparkContext
from pyspark.sql import SparkSession

from app.engines import spark as engine
from app.scoring import Scorer
from tests.app.test_score import feature_columns, predict_csv, run
from tests.helpers.data import MESSY_DROP, write_shards

pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),  # PySpark's toPandas
]
REPO = Path(__file__).resolve().parents[2]
ATOL = 1e-6


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """The engine's own session, active for the module: `score` runs on it instead of starting
    one per call. The JVM it launched is stopped at the end."""
    with engine._session("local[2]", 1_000) as session:
        yield session
    gateway = SparkContext._gateway
    if gateway is not None:
        process = getattr(gateway, "proc", None)
        gateway.shutdown()
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        SparkContext._gateway = None
        SparkContext._jvm = None


@pytest.fixture(scope="module")
def diabetes_rows(diabetes_csv: Path) -> pd.DataFrame:
    """The diabetes file's feature cells as text (blanks, `inf`), after an id column."""
    frame = pd.read_csv(diabetes_csv, dtype=str, keep_default_na=False).drop(columns="target")
    frame.insert(0, "id", [f"p{i:03d}" for i in range(len(frame))])
    return frame


def read_output(path: Path) -> pd.DataFrame:
    """A Spark output directory (or the local engine's file) as one frame."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.is_dir():
        parts = sorted(path.glob("part-*.csv"))
        assert parts, f"no part files in {path}"
        return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    return pd.read_csv(path)


def by_id(frame: pd.DataFrame, ids: pd.Series[str] | list[str], column: str = "id") -> pd.DataFrame:
    """`frame`'s rows in the order of `ids` (each id once)."""
    assert frame[column].is_unique and len(frame) == len(ids)
    return frame.set_index(column).loc[list(ids)]


def score_both(
    source: Path, tmp_path: Path, suffix: str, *options: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the local engine's output, the Spark engine's) for `source`."""
    local, distributed = tmp_path / f"local{suffix}", tmp_path / f"spark{suffix}"
    assert run(source, local, *options) == 0
    assert run(source, distributed, *options, "--engine", "spark") == 0
    assert distributed.is_dir()
    return read_output(local), read_output(distributed)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_csv_scores_as_the_local_engine_and_predict(
    spark: SparkSession, model_root: Path, diabetes_csv: Path, diabetes_rows: pd.DataFrame,
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str,
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    diabetes_rows.to_csv(source, index=False)
    local, scored = score_both(source, tmp_path, suffix, "--model-dir", model_root,
                               "--model-name", "diabetes", "--id-column", "id")  # fmt: skip
    assert "scored 442 rows with diabetes version 1" in capsys.readouterr().err
    assert list(scored.columns) == ["id", "prediction"]
    ids = diabetes_rows["id"]
    served = predict_csv(model_root, "diabetes", feature_columns(diabetes_csv, (), "target"))
    np.testing.assert_allclose(by_id(scored, ids)["prediction"], served["prediction"], atol=ATOL)
    np.testing.assert_allclose(
        by_id(scored, ids)["prediction"], by_id(local, ids)["prediction"], atol=ATOL
    )


def test_parquet_keeps_its_types_and_scores_as_the_local_engine(
    spark: SparkSession, model_root: Path, diabetes_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(diabetes_csv).drop(columns="target")  # numbers, NaN and inf
    frame.insert(0, "key", range(100, 100 + len(frame)))
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source)
    local, scored = score_both(source, tmp_path, ".parquet", "--model-dir", model_root,
                               "--model-name", "diabetes", "--id-column", "key")  # fmt: skip
    assert scored["key"].dtype == np.int64  # the id column's own type
    keys = list(frame["key"])
    as_text = frame.drop(columns="key").replace([np.inf, -np.inf], np.nan)
    served = predict_csv(model_root, "diabetes", as_text)
    np.testing.assert_allclose(
        by_id(scored, keys, "key")["prediction"], served["prediction"], atol=ATOL
    )
    np.testing.assert_allclose(
        by_id(scored, keys, "key")["prediction"], by_id(local, keys, "key")["prediction"], atol=ATOL
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_directory_or_a_glob_of_shards(
    spark: SparkSession, model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    whole = tmp_path / "rows.csv"
    diabetes_rows.to_csv(whole, index=False)
    shards = write_shards(diabetes_rows, tmp_path / "shards", 3, suffix)
    options = ("--model-dir", model_root, "--model-name", "diabetes", "--id-column", "id")
    assert run(whole, tmp_path / "local.csv", *options) == 0
    local = read_output(tmp_path / "local.csv")
    ids = diabetes_rows["id"]
    for i, source in enumerate((shards, shards / f"part-*.{suffix}")):
        out = tmp_path / f"spark-{i}.parquet"
        assert run(source, out, *options, "--engine", "spark") == 0
        np.testing.assert_allclose(
            by_id(read_output(out), ids)["prediction"], by_id(local, ids)["prediction"], atol=ATOL
        )


def test_a_classifier_gives_the_same_labels_and_probabilities(
    spark: SparkSession, model_root: Path, messy_csv: Path, tmp_path: Path
) -> None:
    local, scored = score_both(messy_csv, tmp_path, ".csv", "--model-dir", model_root,
                               "--model-name", "labels", "--id-column", "id")  # fmt: skip
    ids = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)["id"]
    served = predict_csv(
        model_root, "labels", feature_columns(messy_csv, MESSY_DROP["label"], "label")
    )
    scored, local = by_id(scored, ids), by_id(local, ids)
    assert list(scored.columns) == list(served.columns) == list(local.columns)
    assert list(scored["prediction"]) == list(served["prediction"]) == list(local["prediction"])
    np.testing.assert_allclose(scored.iloc[:, 1:], served.iloc[:, 1:], atol=ATOL)
    np.testing.assert_allclose(scored.iloc[:, 1:], local.iloc[:, 1:], atol=ATOL)


def test_a_users_job_scores_with_output_schema(
    spark: SparkSession, model_root: Path, messy_csv: Path
) -> None:
    """The README's PySpark snippet."""
    scorer = Scorer(model_root, "labels", id_column="id")
    df = spark.read.csv(str(messy_csv), header=True)
    schema = engine.output_schema(scorer, df.schema)
    assert schema.simpleString().startswith("struct<id:string,prediction:string,probability_")
    scored = df.mapInPandas(scorer.score_batches, schema).toPandas()
    expected = scorer.score(pd.read_csv(messy_csv, dtype=str, keep_default_na=False))
    scored, expected = by_id(scored, expected["id"]), expected.set_index("id")
    assert list(scored["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(scored.iloc[:, 1:], expected.iloc[:, 1:], atol=ATOL)


def test_short_rows_read_as_pandas_reads_them_long_ones_are_refused(
    spark: SparkSession, model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lines = diabetes_rows.head(20).to_csv(index=False).splitlines()
    lines[3] = ",".join(lines[3].split(",")[:5])  # p002: the last six cells missing
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines) + "\n")
    options = ("--model-dir", model_root, "--model-name", "diabetes", "--id-column", "id")
    local, scored = score_both(short, tmp_path, ".csv", *options)
    ids = diabetes_rows["id"].head(20)
    np.testing.assert_allclose(
        by_id(scored, ids)["prediction"], by_id(local, ids)["prediction"], atol=ATOL
    )
    lines[5] += ",7"  # p004: one cell too many
    long = tmp_path / "long.csv"
    long.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run(long, tmp_path / "long-out.csv", *options, "--engine", "spark") == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("error: the row whose id is 'p004' has 12 cells, the header 11")
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="bmi"), "error: the input has no column for the features bmi"),
        (
            lambda f: f.assign(bp=["12", "high", *["1"] * (len(f) - 2)]),
            "error: the row whose id is 'p001', column bp: 'high' is not a number",
        ),
        (lambda f: f.drop(columns="id"), "error: no column 'id' (--id-column)"),
    ],
)
def test_bad_input_stops_with_the_scorers_line(
    spark: SparkSession, model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], edit: object, message: str,
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    edit(diabetes_rows).to_csv(source, index=False)  # type: ignore[operator]
    out = tmp_path / "out.parquet"
    assert run(source, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--id-column", "id", "--engine", "spark") == 2  # fmt: skip
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_unreadable_input_stops_with_one_line(
    spark: SparkSession, model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    shards = write_shards(diabetes_rows, tmp_path / "shards", 2)
    second = pd.read_csv(shards / "part-001.csv", dtype=str, keep_default_na=False)
    columns = list(second.columns)
    columns[3], columns[4] = columns[4], columns[3]  # bmi and bp change places
    second[columns].to_csv(shards / "part-001.csv", index=False)
    options = ("--model-dir", model_root, "--model-name", "diabetes", "--engine", "spark")
    capsys.readouterr()
    assert run(shards, tmp_path / "out.csv", *options) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: cannot read file://{shards / 'part-001.csv'}: CSV header does not conform to "
        "the schema. Expected: bmi but found: bp"
    )
    assert run(tmp_path / "missing.csv", tmp_path / "out.csv", *options) == 2
    assert "Path does not exist" in capsys.readouterr().err


def test_only_an_earlier_output_is_replaced(
    spark: SparkSession, model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    diabetes_rows.head(30).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    options = (source, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--engine", "spark")  # fmt: skip
    assert run(*options) == 0
    assert run(*options) == 0  # its own output: replaced
    assert len(read_output(out)) == 30
    (out / "notes.txt").write_text("mine")
    assert run(*options) == 2
    assert "is not an earlier output" in capsys.readouterr().err
    assert (out / "notes.txt").exists()


def test_the_command_starts_and_stops_its_own_spark_and_fails_in_one_line(
    model_root: Path, diabetes_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """A process of its own, as a user runs it: the start-up line, and a bad cell's error with
    no Java or Python stack trace on stderr."""
    source = tmp_path / "rows.csv"
    diabetes_rows.assign(bmi=["heavy", *diabetes_rows["bmi"][1:]]).to_csv(source, index=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    done = subprocess.run(
        [sys.executable, "-m", "app.score", str(source), str(tmp_path / "out.csv"),
         "--model-dir", str(model_root), "--model-name", "diabetes", "--id-column", "id",
         "--engine", "spark", "--spark-master", "local[2]"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "error: the row whose id is 'p000', column bmi: 'heavy' is not a number"
    assert any(line.startswith("engine start-up: ") for line in lines), done.stderr
    assert not [line for line in lines if "Traceback" in line or line.startswith("\tat ")], (
        done.stderr
    )
