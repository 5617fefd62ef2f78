"""`python -m training`: clear one-line errors with exit status 2, and --if-missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from training.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def write_csv(path: Path, **columns: list[Any]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "--data", str(tmp_path / "nope.csv"))
    assert code == 2
    assert out == ""
    assert error_line(err) == f"error: data file not found: {tmp_path / 'nope.csv'}"


def test_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"x,y\n\xff\xfe,\x80\n")
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "bad.csv"))
    assert code == 2
    assert error_line(err).startswith(f"error: cannot read data file {tmp_path / 'bad.csv'}: ")


def test_directory_without_data_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x,y\n1,2\n")
    code, out, err = run_cli(capsys, "--data", str(tmp_path))
    assert (code, out) == (2, "")
    assert error_line(err) == (
        f"error: no data files (.csv, .parquet, .pq) match the directory {tmp_path}"
    )


def test_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    code, _, err = run_cli(capsys, "--data", str(tmp_path / "empty.csv"))
    assert code == 2
    assert error_line(err) == f"error: data file is empty: {tmp_path / 'empty.csv'}"


def test_target_column_absent_lists_columns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "d.csv", x1=[1.0] * 12, x2=[2.0] * 12, price=[3.0] * 12)
    code, _, err = run_cli(capsys, "--data", str(csv))
    assert code == 2
    assert error_line(err) == (
        f"error: target column 'target' not found in {csv}; columns: x1, x2, price"
    )


def test_too_few_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "d.csv", x=list(range(11)), target=[*range(9), None, None])
    code, _, err = run_cli(capsys, "--data", str(csv))
    assert code == 2
    assert error_line(err) == (
        "error: too few rows to split into train, validation and test: 9 usable, at least 10 needed"
    )


def test_non_numeric_regression_target_names_the_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "d.csv", x=list(range(12)), y=[1, 2, "three", *range(9)])
    code, _, err = run_cli(capsys, "--data", str(csv), "--target", "y", "--task", "regression")
    assert code == 2
    assert error_line(err) == (
        "error: target column 'y' is not numeric: row 3 holds 'three' "
        "(use --task classification to predict it as a class)"
    )


def test_unknown_categorical_column_lists_columns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "d.csv", x=list(range(12)), target=[1.0] * 12)
    code, _, err = run_cli(capsys, "--data", str(csv), "--categorical", "x,colour")
    assert code == 2
    assert error_line(err) == (
        f"error: --categorical column 'colour' not found in {csv}; columns: x, target"
    )


def test_classification_target_with_one_class(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(tmp_path / "d.csv", x=list(range(12)), y=["spam"] * 11 + [""])
    code, _, err = run_cli(capsys, "--data", str(csv), "--target", "y")
    assert code == 2
    assert error_line(err) == "error: classification target 'y' has fewer than 2 classes: 'spam'"


def test_cv_larger_than_the_training_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(
        tmp_path / "d.csv", x=[i * 1.5 for i in range(20)], target=[i % 7 + 0.5 for i in range(20)]
    )
    code, _, err = run_cli(capsys, "--data", str(csv), "--cv", "17")
    assert code == 2
    assert error_line(err) == (
        "error: --cv 17 must be between 2 and the 16 rows left for training after the test split"
    )


def test_only_useless_features_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = write_csv(
        tmp_path / "d.csv", id=[f"r{i}" for i in range(12)], c=[3] * 12, target=list(range(12))
    )
    code, _, err = run_cli(capsys, "--data", str(csv), "--drop", "id")
    assert code == 2
    assert (
        error_line(err) == f"error: {csv} has no usable feature columns besides the target 'target'"
    )


def test_invalid_flag_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--epochs", "0"])
    assert exit_info.value.code == 2
    assert "argument --epochs: must be at least 1, got 0" in capsys.readouterr().err


def test_if_missing_reuses_the_newest_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for version in ("1", "3"):
        (tmp_path / "default" / version).mkdir(parents=True)
    code, out, _ = run_cli(capsys, "--model-dir", str(tmp_path), "--if-missing")
    assert code == 0
    assert out.splitlines()[-1] == str(tmp_path / "default" / "3")
    assert sorted(p.name for p in (tmp_path / "default").iterdir()) == ["1", "3"]


def test_errors_print_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "--data", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: data file not found: {tmp_path / 'missing.csv'}"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cv", "3"], "--cv needs the data in memory and one process"),
        (["--data", "sklearn:wine"], "--stream reads files; the built-in data sets are small"),
    ],
)
def test_stream_refuses_what_it_cannot_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    csv = write_csv(tmp_path / "d.csv", x=list(range(20)), target=list(range(20)))
    code, out, err = run_cli(capsys, "--data", str(csv), "--stream", *args)
    assert (code, out) == (2, "")
    assert error_line(err).startswith(f"error: {message}")
