"""Live drift: the rows a served version predicts against its training data's distributions."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from scipy.spatial.distance import jensenshannon

from app.bundle import REFERENCE_FILE, read_reference
from app.model.drift import (
    MIN_ROWS,
    jensen_shannon_distance,
    population_stability_index,
    status_of,
)
from tests.helpers.data import MESSY_DROP
from tests.helpers.service import serve

WINDOW = 4_000
FEATURES = ("age", "income", "colour", "member", "rooms")


def messy_rows(messy_csv: Path, n: int, seed: int) -> pd.DataFrame:
    """`n` rows drawn from the messy file, cells as written: traffic like the training data."""
    frame = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    drop = [*MESSY_DROP["price"], "price", "constant", "empty"]
    return frame.drop(columns=drop).sample(n=n, replace=True, random_state=seed)


def post_csv(client: TestClient, rows: pd.DataFrame) -> None:
    for start in range(0, len(rows), 2_000):
        body = rows.iloc[start : start + 2_000].to_csv(index=False)
        answer = client.post("/predict", content=body, headers={"content-type": "text/csv"})
        assert answer.status_code == 200, answer.text


def drift(client: TestClient, path: str = "/model/drift") -> dict[str, object]:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def statuses(report: dict[str, object]) -> dict[str, str]:
    features = report["features"]
    assert isinstance(features, dict)
    return {name: figures["status"] for name, figures in features.items()}


@pytest.fixture
def client(model_root: Path) -> TestClient:
    return serve(model_root, "messy", drift_window_rows=WINDOW, max_rows=5_000)


def test_traffic_like_the_training_data_keeps_every_feature_ok(
    client: TestClient, messy_csv: Path
) -> None:
    with client:
        first = drift(client)
        assert first["status"] == "collecting" and first["rows"] == 0
        assert "drift is reported from" in str(first["message"])
        post_csv(client, messy_rows(messy_csv, MIN_ROWS - 1, seed=1))
        assert drift(client)["status"] == "collecting"  # one row short of the minimum
        post_csv(client, messy_rows(messy_csv, WINDOW, seed=2))
        report = drift(client)
    assert report["status"] == "ok", report
    assert set(statuses(report)) == set(FEATURES)
    assert set(statuses(report).values()) == {"ok"}
    rows = report["rows"]
    assert isinstance(rows, int)
    assert WINDOW <= rows <= WINDOW + 2_000  # the window, and one call more


def test_a_numeric_feature_shifted_two_deviations_alone_turns_alert(
    client: TestClient, messy_csv: Path
) -> None:
    rows = messy_rows(messy_csv, WINDOW, seed=3)
    age = pd.to_numeric(rows["age"].str.strip(), errors="coerce").replace([np.inf, -np.inf], np.nan)
    shifted = age + 2 * age.std()
    assert shifted.notna().mean() > 0.85  # the shift moves values, it does not blank them
    rows["age"] = shifted.map(lambda v: "" if np.isnan(v) else f"{v:.2f}")
    with client:
        post_csv(client, messy_rows(messy_csv, WINDOW, seed=4))
        assert drift(client)["status"] == "ok"
        post_csv(client, rows)  # one window of shifted traffic replaces the earlier one
        report = drift(client)
    assert {n for n, s in statuses(report).items() if s != "ok"} == {"age"}
    assert statuses(report)["age"] == "alert"
    assert report["status"] == "alert"
    features = report["features"]
    assert isinstance(features, dict)
    assert features["age"]["psi"] >= 0.25
    assert features["age"]["missing_rate"] < 0.15


def test_an_unseen_category_shows_as_out_of_vocabulary(client: TestClient, messy_csv: Path) -> None:
    rows = messy_rows(messy_csv, 2_000, seed=5)
    rows["colour"] = "turquoise"
    with client:
        post_csv(client, rows)
        report = drift(client)
    features = report["features"]
    assert isinstance(features, dict)
    colour = features["colour"]
    assert colour["kind"] == "categorical"
    assert colour["out_of_vocabulary_rate"] == pytest.approx(1.0)
    assert colour["reference_out_of_vocabulary_rate"] < 0.05
    assert colour["status"] == "alert"
    assert features["age"]["status"] == "ok"
    assert features["age"]["missing_rate"] == pytest.approx(
        features["age"]["reference_missing_rate"], abs=0.05
    )


def test_drift_is_exported_for_prometheus(client: TestClient, messy_csv: Path) -> None:
    rows = messy_rows(messy_csv, 2_000, seed=6)
    rows["colour"] = "turquoise"
    with client:
        post_csv(client, rows)
        text = client.get("/metrics").text
        report = drift(client, "/models/messy/drift")
        assert drift(client, "/models/messy/versions/1/drift") == report
        assert client.get("/models/nothing/drift").status_code == 404
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    colour = (("feature", "colour"), ("model", "messy"))
    assert samples["tabserve_feature_drift", (*colour, ("statistic", "status"))] == 2
    assert (
        samples["tabserve_feature_drift", (*colour, ("statistic", "out_of_vocabulary_rate"))] == 1
    )
    age = (("feature", "age"), ("model", "messy"))
    assert samples["tabserve_feature_drift", (*age, ("statistic", "status"))] == 0
    assert ("tabserve_output_drift", (("model", "messy"), ("statistic", "psi"))) in samples
    assert samples["tabserve_drift_window_rows", (("model", "messy"),)] == 2_000


def test_a_new_version_starts_its_window_afresh(
    tmp_path: Path, model_root: Path, messy_csv: Path
) -> None:
    shutil.copytree(model_root / "messy" / "1", tmp_path / "messy" / "1")
    with serve(tmp_path, "messy", model_poll_seconds=0.1, max_rows=5_000) as client:
        post_csv(client, messy_rows(messy_csv, 2_000, seed=7))
        assert drift(client)["rows"] == 2_000
        shutil.copytree(model_root / "messy" / "1", tmp_path / "messy" / ".partial-2")
        (tmp_path / "messy" / ".partial-2").rename(tmp_path / "messy" / "2")
        deadline = time.monotonic() + 20
        while client.get("/model").json()["version"] != 2:
            assert time.monotonic() < deadline, "version 2 was not loaded"
            time.sleep(0.1)
        report = drift(client)
    assert report["model_version"] == 2
    assert report["rows"] == 0 and report["status"] == "collecting"


def test_old_bundles_and_drift_off_say_unavailable(tmp_path: Path, model_root: Path) -> None:
    shutil.copytree(model_root / "messy" / "1", tmp_path / "messy" / "1")
    (tmp_path / "messy" / "1" / REFERENCE_FILE).unlink()
    assert read_reference(tmp_path / "messy" / "1") is None
    with serve(tmp_path, "messy") as client:
        report = drift(client)
        assert (
            client.post("/predict", json={"instances": [dict.fromkeys(FEATURES)]}).status_code
            == 200
        )
    assert report["status"] == "unavailable"
    assert "no reference distributions" in str(report["message"])
    with serve(model_root, "messy", drift="off") as client:
        report = drift(client)
    assert report["status"] == "unavailable" and "DRIFT=off" in str(report["message"])


def test_the_reference_shares_are_the_training_rows_in_the_bins(model_root: Path) -> None:
    reference = read_reference(model_root / "messy" / "1")
    assert reference is not None
    for name in FEATURES:
        distribution = reference.features[name]
        assert sum(distribution.shares) == pytest.approx(1.0)
        assert len(distribution.shares) == len(distribution.labels)
    age = reference.features["age"]
    assert age.kind == "numeric" and 5 <= len(age.edges) <= 9 and age.labels[-1] == "missing"
    # The messy file blanks a twelfth of age's cells (and some are inf): missing, as served.
    assert 0.03 < age.shares[-1] < 0.15
    colour = reference.features["colour"]
    assert colour.labels[-2:] == ["other", "missing"]
    assert sum(reference.output.shares) == pytest.approx(1.0)


def test_psi_and_js_are_the_textbook_figures() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Shares well above the floor PSI puts under empty bins.
        p, q = rng.dirichlet(np.full(8, 20.0)), rng.dirichlet(np.full(8, 20.0))
        assert jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
        expected = float(np.sum((q - p) * np.log(q / p)))
        assert population_stability_index(p, q) == pytest.approx(expected)
    same = np.full(10, 0.1)
    assert population_stability_index(same, same) == 0 and jensen_shannon_distance(same, same) == 0
    assert status_of(0.05, 0.05) == "ok"
    assert status_of(0.12, 0.05) == "warn" and status_of(0.05, 0.12) == "warn"
    assert status_of(0.3, 0.05) == "alert"
