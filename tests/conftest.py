"""Shared fixtures: a CSV with gaps and infinities, and one small bundle trained from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_diabetes

from app.factory import create_app
from app.settings import Settings

SEED = 7
TRAIN_EPOCHS = 25


@pytest.fixture(scope="session")
def diabetes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's diabetes data with about 5% of feature cells blank and 2% infinite."""
    frame = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(SEED)
    features = frame.columns.drop("target")
    cells = frame[features].to_numpy(copy=True)
    cells[rng.random(cells.shape) < 0.05] = np.nan
    cells[rng.random(cells.shape) < 0.01] = np.inf
    cells[rng.random(cells.shape) < 0.01] = -np.inf
    frame[features] = cells
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory, diabetes_csv: Path) -> Path:
    """A model root holding one trained bundle, `diabetes/1`."""
    from training.config import Hyperparameters, TrainConfig
    from training.pipeline import run

    root = tmp_path_factory.mktemp("models")
    params = Hyperparameters(epochs=TRAIN_EPOCHS, seed=SEED)
    run(TrainConfig(data=diabetes_csv, model_dir=root, model_name="diabetes", params=params))
    return root


@pytest.fixture(scope="session")
def version_dir(model_root: Path) -> Path:
    return model_root / "diabetes" / "1"


def settings_for(model_root: Path, **overrides: object) -> Settings:
    return Settings(model_dir=model_root, model_name="diabetes", **overrides)  # type: ignore[arg-type]


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_root, max_rows=100))) as c:
        yield c
