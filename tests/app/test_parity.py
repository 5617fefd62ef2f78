"""No train/serve drift: the service answers exactly what the exported model gives offline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf
from fastapi.testclient import TestClient

from app.bundle import SAVED_MODEL_DIR, read_stats
from tests.conftest import SEED
from training.data import features_matrix, load_dataset, split_dataset


def as_json_value(value: float) -> float | None:
    # NaN is "missing" (null); infinities travel as JSON's common Infinity / -Infinity extension.
    return None if math.isnan(value) else value


def test_served_predictions_equal_the_saved_model_offline(
    client: TestClient, version_dir: Path, diabetes_csv: Path
) -> None:
    dataset = load_dataset(diabetes_csv, "target")
    test = split_dataset(dataset, SEED).test
    raw = features_matrix(test, dataset.features)
    assert np.isnan(raw).any() and np.isinf(raw).any(), "the test rows must exercise both"

    instances = [
        {name: as_json_value(v) for name, v in zip(dataset.features, row, strict=True)}
        for row in raw
    ]
    response = client.post(
        "/predict",
        content=json.dumps({"instances": instances}),  # allow_nan: emits Infinity
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("diabetes", 1)

    stats = read_stats(version_dir)
    signature = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR)).signatures[
        "serving_default"
    ]
    offline = next(iter(signature(tf.constant(stats.transform(raw))).values())).numpy().ravel()
    np.testing.assert_allclose(body["predictions"], stats.unscale_target(offline), rtol=1e-5)
    assert np.std(body["predictions"]) > 1.0, "predictions must vary from row to row"


def test_one_row_or_many_gives_the_same_answer(client: TestClient) -> None:
    rows = [
        {
            "age": 0.02 * i,
            "sex": 0.05,
            "bmi": 0.01 * i,
            "bp": None,
            "s1": 0.0,
            "s2": 0.0,
            "s3": -0.01,
            "s4": 0.0,
            "s5": 0.02,
            "s6": 0.0,
        }
        for i in range(5)
    ]
    together = client.post("/predict", json={"instances": rows}).json()["predictions"]
    alone = [
        client.post("/predict", json={"instances": [r]}).json()["predictions"][0] for r in rows
    ]
    np.testing.assert_allclose(alone, together, rtol=1e-5)
