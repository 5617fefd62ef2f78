"""No train/serve drift: the service answers exactly what the exported model gives offline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.bundle import read_stats
from tests.helpers.data import SEED, messy_test_rows
from tests.helpers.offline import offline_predictions
from tests.helpers.service import post_rows, serve
from training.data import load_dataset, split_dataset


def test_served_predictions_equal_the_saved_model_offline(
    client: TestClient, version_dir: Path, diabetes_csv: Path
) -> None:
    dataset = load_dataset(diabetes_csv, "target")
    test = split_dataset(dataset, SEED).test
    raw = test[dataset.features].to_numpy()
    assert np.isnan(raw).any() and np.isinf(raw).any(), "the test rows must exercise both"
    # JSON has no NaN or infinity: a client sends null, which the service fills as training
    # filled the blank and infinite cells the offline reference still holds.
    rows = [
        {
            name: v if math.isfinite(v) else None
            for name, v in zip(dataset.features, row, strict=True)
        }
        for row in raw
    ]
    body = post_rows(client, rows)
    assert (body["model_name"], body["model_version"]) == ("diabetes", 1)
    offline = offline_predictions(version_dir, test)
    np.testing.assert_allclose(body["predictions"], offline.values, rtol=1e-5)
    assert np.std(body["predictions"]) > 1.0, "predictions must vary from row to row"


def test_messy_regression_parity(model_root: Path, messy_csv: Path) -> None:
    rows, clean = messy_test_rows(messy_csv, "price")
    with serve(model_root, "messy") as client:
        body = post_rows(client, rows)
    offline = offline_predictions(model_root / "messy" / "1", clean)
    np.testing.assert_allclose(body["predictions"], offline.values, rtol=1e-5)
    assert all(math.isfinite(p) for p in body["predictions"])


def test_messy_classification_parity(model_root: Path, messy_csv: Path) -> None:
    rows, clean = messy_test_rows(messy_csv, "label")
    version_dir = model_root / "labels" / "1"
    with serve(model_root, "labels") as client:
        body = post_rows(client, rows)
    offline = offline_predictions(version_dir, clean)
    assert offline.probabilities is not None
    assert body["classes"] == ["high", "low", "mid"]
    assert body["predictions"] == offline.values
    np.testing.assert_allclose(body["probabilities"], offline.probabilities, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sum(body["probabilities"], axis=1), 1.0, rtol=1e-9)
    assert len(set(body["predictions"])) > 1


def test_unseen_category_goes_to_the_other_slot(model_root: Path) -> None:
    stats = read_stats(model_root / "messy" / "1")
    row = {"age": 40, "income": 50_000.0, "colour": "red", "member": True, "rooms": 3}
    with serve(model_root, "messy") as client:
        unseen = post_rows(client, [{**row, "colour": "turquoise"}, {**row, "colour": None}])
        seen = post_rows(client, [row])
    assert unseen["predictions"][0] == unseen["predictions"][1], "unseen and missing share a slot"
    assert unseen["predictions"][0] != seen["predictions"][0]
    assert "turquoise" not in next(f for f in stats.features if f.name == "colour").vocabulary  # type: ignore[union-attr]


def test_one_row_or_many_gives_the_same_answer(client: TestClient) -> None:
    rows = [
        {"age": 0.02 * i, "sex": 0.05, "bmi": 0.01 * i, "bp": None, "s1": 0.0, "s2": 0.0,
         "s3": -0.01, "s4": 0.0, "s5": 0.02, "s6": 0.0}
        for i in range(5)
    ]  # fmt: skip
    together = post_rows(client, rows)["predictions"]
    alone = [post_rows(client, [r])["predictions"][0] for r in rows]
    np.testing.assert_allclose(alone, together, rtol=1e-5)
