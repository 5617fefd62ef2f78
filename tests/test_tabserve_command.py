"""The `tabserve` console script: one command whose subcommands are the three entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.helpers.service import service_logging


def test_the_console_script_is_installed_and_lists_its_commands() -> None:
    script = Path(sys.executable).parent / "tabserve"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    for command in ("train", "serve", "score", "promote"):
        assert f"  {command} " in done.stdout


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy"]) == 2
    assert "unknown command 'deploy'" in capsys.readouterr().err
    assert main([]) == 2


def test_serve_takes_the_options_of_python_m_app(capsys: pytest.CaptureFixture[str]) -> None:
    # An option overrides its setting, and is validated as the setting is.
    with service_logging("info"):  # serve configures the process's logging; put it back after
        assert main(["serve", "--port", "0"]) == 2
    assert "setting PORT" in capsys.readouterr().err


def test_serve_names_a_missing_model_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with service_logging("info"):
        assert main(["serve", "--model-dir", str(tmp_path), "--model-name", "nothing"]) == 2
    assert f"{tmp_path / 'nothing'}: no model versions found" in capsys.readouterr().err


def test_score_and_train_are_the_same_commands_as_their_modules(
    model_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.csv"
    assert main(["score", str(missing), str(tmp_path / "out.csv"), "--model-dir",
                 str(model_root), "--model-name", "diabetes"]) == 2  # fmt: skip
    assert "absent.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["train", "--no-such-flag"])
    assert usage.value.code == 2
    assert "python -m training" in capsys.readouterr().err
