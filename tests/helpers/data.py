"""Data the tests train and predict on: constants, the messy file's frame, shards and rows."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.data import load_dataset, split_dataset

SEED = 7
TRAIN_EPOCHS = 25
MESSY_ROWS = 400
# The columns of the messy file that are not features of the model being trained.
MESSY_DROP = {"price": ("id", "label"), "label": ("id", "price")}


def messy_frame() -> pd.DataFrame:
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


def messy_test_rows(messy_csv: Path, target: str) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The test split of the messy file twice: as a client would send the raw cells (numbers
    parsed, categories as written), and as the training code cleans them. Five rows get a
    colour nobody has seen."""
    dataset = load_dataset(messy_csv, target, categorical=("rooms",), drop=MESSY_DROP[target])
    clean = split_dataset(dataset, SEED).test.copy()
    clean.loc[clean.index[:5], "colour"] = "turquoise"
    raw = pd.read_csv(messy_csv, dtype=str, keep_default_na=False).loc[clean.index]
    raw.loc[raw.index[:5], "colour"] = "turquoise"
    records: list[dict[str, str]] = raw.to_dict("records")  # type: ignore[assignment]

    def number(cell: str) -> float | None:
        try:
            value = float(cell)
        except ValueError:
            return None
        return value if math.isfinite(value) else None  # JSON's null: "inf" cells too

    rows: list[dict[str, Any]] = [
        {
            "age": number(r["age"]),
            "income": number(r["income"]),
            "colour": r["colour"],
            "member": r["member"],
            "rooms": int(r["rooms"]),
        }
        for r in records
    ]
    assert any(r["age"].strip() in ("inf", "-inf") for r in records)
    assert any(v is None for row in rows for v in row.values())
    assert any(row["colour"] != row["colour"].strip() for row in rows)
    return rows, clean


def write_shards(frame: pd.DataFrame, directory: Path, parts: int, suffix: str = "csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
        part = frame.iloc[start:stop]
        path = directory / f"part-{i:03d}.{suffix}"
        if suffix == "csv":
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path, index=False)
    return directory
