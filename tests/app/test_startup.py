"""A missing or broken bundle stops start-up with one line naming the path and the problem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.bundle import STATS_FILE, BundleError
from app.http.factory import create_app
from tests.helpers.service import settings_for


def start_server(model_root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MODEL_DIR": str(model_root),
        "MODEL_NAME": "diabetes",
        "PORT": "18999",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def only_line(stderr: str) -> str:
    """The message of the one (JSON) log line a failed start writes."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = json.loads(lines[0])
    assert line["level"] == "critical"
    message: str = line["message"]
    return message


@pytest.fixture
def broken_root(tmp_path: Path, version_dir: Path) -> Path:
    """A copy of the trained bundle, for a test to damage."""
    shutil.copytree(version_dir, tmp_path / "diabetes" / "1")
    return tmp_path


def test_missing_bundle_exits_with_one_line(tmp_path: Path) -> None:
    result = start_server(tmp_path)
    assert result.returncode == 2
    assert only_line(result.stderr).endswith(
        f"cannot start: {tmp_path / 'diabetes'}: "
        "no model versions found (expected <version>/ directories)"
    )


def test_corrupted_statistics_exit_with_one_line(broken_root: Path) -> None:
    stats = broken_root / "diabetes" / "1" / STATS_FILE
    stats.write_text(stats.read_text()[:200])
    result = start_server(broken_root)
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert line.startswith(f"cannot start: {stats}: invalid PreprocessingStats")
    assert "EOF while parsing" in line


def test_missing_pinned_version_lists_what_exists(broken_root: Path) -> None:
    result = start_server(broken_root, MODEL_VERSION="3")
    assert result.returncode == 2
    assert only_line(result.stderr).endswith(
        f"{broken_root / 'diabetes' / '3'}: version not found (available: 1)"
    )


def test_invalid_setting_exits_with_one_line(tmp_path: Path) -> None:
    result = start_server(tmp_path, MAX_ROWS="many")
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "cannot start: setting MAX_ROWS: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_corrupted_saved_model_fails_in_the_lifespan(broken_root: Path) -> None:
    pb = broken_root / "diabetes" / "1" / "saved_model" / "saved_model.pb"
    pb.write_bytes(b"\x00garbage")
    with (
        pytest.raises(BundleError, match=r"saved_model: cannot load SavedModel"),
        TestClient(create_app(settings_for(broken_root, model_runtime="savedmodel"))),
    ):
        pass
