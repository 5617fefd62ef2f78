"""Train the bundle the servers load, with the project's own `python -m training`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TRAIN_TIMEOUT_S = 900


class TrainingFailed(RuntimeError):
    """`python -m training` failed or did not print a version directory."""


def train_bundle(model_root: Path, model_name: str, epochs: int, seed: int | None = None) -> Path:
    """Train on scikit-learn's diabetes data into `model_root` (with training's default seed
    unless `seed` is given) as the next version; returns the version directory."""
    argv = [
        sys.executable,
        "-m",
        "training",
        "--model-dir",
        str(model_root),
        "--model-name",
        model_name,
        "--epochs",
        str(epochs),
        "--log-level",
        "warning",
        *([] if seed is None else ["--seed", str(seed)]),
    ]
    started = time.monotonic()
    try:
        out = subprocess.run(  # noqa: S603 (our own fixed command line)
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=TRAIN_TIMEOUT_S,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    except subprocess.TimeoutExpired:
        raise TrainingFailed(f"training took longer than {TRAIN_TIMEOUT_S} s") from None
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise TrainingFailed(f"training exited {out.returncode}:\n{tail}")
    version_dir = Path(lines[-1])
    if not (version_dir / "saved_model").is_dir():
        raise TrainingFailed(f"training printed {version_dir}, which holds no saved_model/")
    logger.info("trained %s in %.1f s", version_dir, time.monotonic() - started)
    return version_dir


def describe(version_dir: Path) -> dict[str, Any]:
    """Name, version and files of the bundle, and whether it has a LiteRT model."""
    files = sorted(p.name for p in version_dir.iterdir())
    return {
        "name": version_dir.parent.name,
        "version": version_dir.name,
        "files": files,
        "has_model_tflite": "model.tflite" in files,
    }
