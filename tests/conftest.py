"""Shared fixtures: data files with gaps and dirt, and small bundles trained from them once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_diabetes

from app.http.factory import create_app
from app.ops.logs import configure_logging
from app.settings import Settings

SEED = 7
TRAIN_EPOCHS = 25
MESSY_ROWS = 400
# The columns of the messy file that are not features of the model being trained.
MESSY_DROP = {"price": ("id", "label"), "label": ("id", "price")}


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


def _messy_frame() -> pd.DataFrame:
    """What real exports look like: text numbers with spaces, NA, inf, stray case and blanks,
    booleans, a low-cardinality integer code, a constant and an empty column, an identifier,
    and rows without a target."""
    rng = np.random.default_rng(SEED)
    n = MESSY_ROWS
    age = rng.integers(18, 80, n).astype(float)
    income = rng.normal(50_000, 15_000, n)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    member = rng.random(n) < 0.4
    rooms = rng.integers(1, 6, n)
    price = (
        1_000 * rooms
        + 0.05 * income
        - 20 * age
        + np.select([colour == "red", colour == "green"], [3_000, 1_000], 0)
        + 2_000 * member
        + rng.normal(0, 500, n)
    )
    label = np.where(price < np.quantile(price, 1 / 3), "low", "high")
    label[(price >= np.quantile(price, 1 / 3)) & (price < np.quantile(price, 2 / 3))] = "mid"

    def messy_numbers(values: np.ndarray) -> list[str]:
        cells = [f" {v:.2f} " if i % 7 == 0 else f"{v:.2f}" for i, v in enumerate(values)]
        for i in rng.choice(n, n // 12, replace=False):
            cells[i] = str(rng.choice(["", "NA", "inf", "-inf", "n/a"]))
        return cells

    colour_cells = [f" {c.upper()[0]}{c[1:]}" if i % 9 == 0 else c for i, c in enumerate(colour)]
    colour_cells[3] = colour_cells[11] = "purple"  # rarer than --min-category-count
    for i in rng.choice(n, n // 20, replace=False):
        colour_cells[i] = ""
    price_cells = [f"{p:.2f}" for p in price]
    label_cells = list(label)
    for i in rng.choice(n, 9, replace=False):
        price_cells[i] = label_cells[i] = ""
    return pd.DataFrame(
        {
            "id": [f"row-{i:05d}" for i in range(n)],
            "age": messy_numbers(age),
            "income": messy_numbers(income),
            "colour": colour_cells,
            "member": ["True" if m else "false" for m in member],
            "rooms": rooms,
            "constant": "7",
            "empty": "",
            "price": price_cells,
            "label": label_cells,
        }
    )


@pytest.fixture(scope="session")
def messy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "messy.csv"
    _messy_frame().to_csv(path, index=False)
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


@contextmanager
def service_logging(level: str) -> Iterator[None]:
    """The service's JSON logging at `level` for the block, then the test run's own again (so
    that no later test logs into a stream this one's capture has closed)."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    configure_logging(level)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        logging.captureWarnings(False)


def settings_for(model_root: Path, name: str = "diabetes", **overrides: object) -> Settings:
    return Settings(model_dir=model_root, model_name=name, **overrides)  # type: ignore[arg-type]


def serve(model_root: Path, name: str = "diabetes", **overrides: object) -> TestClient:
    """A client for an app serving model `name`; use it in `with` so the lifespan runs."""
    return TestClient(create_app(settings_for(model_root, name, **overrides)))


@pytest.fixture
def client(model_root: Path) -> Iterator[TestClient]:
    with serve(model_root, max_rows=100) as c:
        yield c
