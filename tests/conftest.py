"""Shared fixtures: data files with gaps and dirt, and small bundles trained from them once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_diabetes

from tests.helpers.data import MESSY_DROP, SEED, TRAIN_EPOCHS, messy_frame
from tests.helpers.service import serve

# The suite's services answer HTTP only unless a test gives one a gRPC port of its own: many
# apps start and stop in one run, and the servers it starts as processes inherit this.
os.environ.setdefault("GRPC_PORT", "0")


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
def messy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "messy.csv"
    messy_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def model_root(
    tmp_path_factory: pytest.TempPathFactory, diabetes_csv: Path, messy_csv: Path
) -> Path:
    """A model root with `diabetes/1` (numbers with gaps), and `messy/1` (regression) and
    `labels/1` (three classes) from the messy file."""
    from training.config import Hyperparameters, TrainConfig
    from training.pipeline import run

    root = tmp_path_factory.mktemp("models")
    params = Hyperparameters(epochs=TRAIN_EPOCHS, seed=SEED)
    run(TrainConfig(data=diabetes_csv, model_dir=root, model_name="diabetes", params=params))
    for name, target in (("messy", "price"), ("labels", "label")):
        run(
            TrainConfig(
                data=messy_csv,
                target=target,
                categorical=("rooms",),
                drop=MESSY_DROP[target],
                min_category_count=5,
                model_dir=root,
                model_name=name,
                params=Hyperparameters(epochs=60, seed=SEED, learning_rate=3e-3),
            )
        )
    return root


@pytest.fixture(scope="session")
def version_dir(model_root: Path) -> Path:
    return model_root / "diabetes" / "1"


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    with serve(model_root, max_rows=100) as c:
        yield c
