"""`python -m app.score`: batch scoring equals what POST /predict answers for the same rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.score import main
from tests.helpers.data import MESSY_DROP
from tests.helpers.service import serve


def feature_columns(csv: Path, drop: tuple[str, ...], target: str) -> pd.DataFrame:
    """The file's cells as text, without the target and the columns the model does not use."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return frame.drop(columns=[*drop, target, "constant", "empty"], errors="ignore")


def predict_csv(model_root: Path, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """POST /predict with the rows as CSV, answered as CSV."""
    with serve(model_root, name) as client:
        answer = client.post(
            "/predict",
            content=rows.to_csv(index=False),
            headers={"content-type": "text/csv", "accept": "text/csv"},
        )
    assert answer.status_code == 200, answer.text
    return pd.read_csv(io.StringIO(answer.text))


def run(*args: object) -> int:
    return main([str(a) for a in args])


def test_scoring_a_messy_csv_equals_predict(
    model_root: Path, messy_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scored.csv"
    assert run(messy_csv, out, "--model-dir", model_root, "--model-name", "labels",
               "--id-column", "id", "--chunk-rows", 64) == 0  # fmt: skip
    scored = pd.read_csv(out)
    source = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    assert list(scored["id"]) == list(source["id"])  # passed through, in order
    served = predict_csv(
        model_root, "labels", feature_columns(messy_csv, MESSY_DROP["label"], "label")
    )
    assert list(scored.columns[1:]) == list(served.columns)
    assert list(scored["prediction"]) == list(served["prediction"])
    np.testing.assert_allclose(scored.iloc[:, 2:], served.iloc[:, 1:], rtol=1e-6)
    assert "scored 400 rows with labels version 1" in capsys.readouterr().err


def test_chunks_do_not_change_the_answer(model_root: Path, messy_csv: Path, tmp_path: Path) -> None:
    outputs = []
    for chunk in (7, 1000):
        out = tmp_path / f"chunk-{chunk}.csv"
        assert run(messy_csv, out, "--model-dir", model_root, "--model-name", "messy",
                   "--chunk-rows", chunk) == 0  # fmt: skip
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]


def test_parquet_in_and_out(model_root: Path, diabetes_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(diabetes_csv).drop(columns="target")
    frame.insert(0, "key", range(100, 100 + len(frame)))
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source)
    out = tmp_path / "scored.parquet"
    assert run(source, out, "--model-dir", model_root, "--model-name", "diabetes",
               "--id-column", "key", "--chunk-rows", 100) == 0  # fmt: skip
    scored = pd.read_parquet(out)
    assert list(scored["key"]) == list(frame["key"])
    # JSON and CSV carry no infinity: the same rows with blanks where the file has inf or NaN.
    as_text = frame.drop(columns="key").replace([np.inf, -np.inf], np.nan)
    served = predict_csv(model_root, "diabetes", as_text)
    np.testing.assert_allclose(scored["prediction"], served["prediction"], rtol=1e-6)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="bmi"), "no column for the features bmi"),
        (
            lambda f: f.assign(bp=["12", "high", *["1"] * (len(f) - 2)]),
            "row 2, column bp: 'high' is not a number",
        ),
    ],
)
def test_bad_input_stops_with_one_line(
    model_root: Path, diabetes_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    edit: object, message: str,
) -> None:  # fmt: skip
    source = tmp_path / "rows.csv"
    edit(pd.read_csv(diabetes_csv, dtype=str)).to_csv(source, index=False)  # type: ignore[operator]
    assert (
        run(source, tmp_path / "out.csv", "--model-dir", model_root, "--model-name", "diabetes")
        == 2
    )
    assert capsys.readouterr().err.strip().endswith(message)


def test_a_missing_bundle_stops_with_one_line(
    diabetes_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(diabetes_csv, tmp_path / "out.csv", "--model-dir", tmp_path) == 2
    assert "no model versions found" in capsys.readouterr().err
