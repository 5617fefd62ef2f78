"""Shadow scoring: a second version scores the served rows off the request's path; its figures
show a known difference between two versions, while every answer stays the served version's."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.bundle import METADATA_FILE, STATS_FILE, Decoded, PreprocessingStats
from app.model import shadow as shadow_module
from app.model.loading import load_predictor
from app.model.predictor import Predictor
from app.model.shadow import ShadowHooks, ShadowScorer
from tests.helpers.data import messy_test_rows
from tests.helpers.service import serve, settings_for

SHIFT = 12.5
"""What version 2 of `diabetes` adds to each of version 1's predictions."""
# Both versions run the same float32 network, in batches of different sizes: an output may
# differ in its last bit, times the target's standard deviation (about 80).
UNITS_TOLERANCE = 1e-3
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


Edit = Callable[[dict[str, Any]], None]


def edited_copy(source: Path, target: Path, edits: dict[str, Edit]) -> None:
    """`source`'s bundle published at `target` (written aside, then renamed, as training
    publishes), each JSON file named in `edits` changed by its edit."""
    partial = target.with_name(f".partial-{target.name}")
    shutil.copytree(source, partial)
    for name, edit in edits.items():
        document = json.loads((partial / name).read_text(encoding="utf-8"))
        edit(document)
        (partial / name).write_text(json.dumps(document), encoding="utf-8")
    partial.rename(target)


def shifted_copy(source: Path, target: Path, shift: float) -> None:
    """`source`'s bundle at `target` with its target's mean moved by `shift`: the same network,
    every prediction `shift` more than `source`'s."""

    def shift_mean(stats: dict[str, Any]) -> None:
        stats["target"]["mean"] += shift

    edited_copy(source, target, {STATS_FILE: shift_mean})


def swap_first_two(classes: list[Any]) -> None:
    classes[0], classes[1] = classes[1], classes[0]


@pytest.fixture(scope="module")
def shadow_root(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`diabetes` 1, and 2: 1 shifted by SHIFT. `labels` 1, and 2: 1 with its first two class
    labels swapped (in its statistics and its metadata)."""
    root = tmp_path_factory.mktemp("shadow")
    shutil.copytree(model_root / "diabetes" / "1", root / "diabetes" / "1")
    shifted_copy(model_root / "diabetes" / "1", root / "diabetes" / "2", SHIFT)
    shutil.copytree(model_root / "labels" / "1", root / "labels" / "1")
    swapped: dict[str, Edit] = {
        STATS_FILE: lambda stats: swap_first_two(stats["target"]["classes"]),
        METADATA_FILE: lambda metadata: swap_first_two(metadata["classes"]),
    }
    edited_copy(model_root / "labels" / "1", root / "labels" / "2", swapped)
    return root


def diabetes_rows(n: int, seed: int) -> list[dict[str, float | None]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float | None]] = [
        {f: float(v) for f, v in zip(FEATURES, rng.normal(0, 0.05, len(FEATURES)), strict=True)}
        for _ in range(n)
    ]
    for row in rows[::7]:
        row["bmi"] = None  # missing cells are filled by each version's own statistics
    return rows


def requests_of(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows as requests of 1 to 4 rows."""
    out: list[list[dict[str, Any]]] = []
    start = 0
    while start < len(rows):
        size = 1 + len(out) % 4
        out.append(rows[start : start + size])
        start += size
    return out


def answers(client: TestClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bodies = []
    for instances in requests_of(rows):
        response = client.post("/predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


def shadow_after(
    client: TestClient, rows: int, path: str = "/model/shadow", timeout: float = 10.0
) -> dict[str, Any]:
    """The shadow's report once it has dealt with `rows` rows (compared or dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if report["rows"] + report["dropped_rows"] >= rows:
            return report
        assert time.monotonic() < deadline, f"the shadow did not score {rows} rows: {report}"
        time.sleep(0.02)


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }


def test_a_shadow_measures_a_known_difference_while_every_answer_stays_the_served_ones(
    shadow_root: Path,
) -> None:
    rows = diabetes_rows(300, seed=1)
    with serve(shadow_root, model_poll_seconds=0) as plain:
        expected = answers(plain, rows)
    # Served: version 2. Shadow: version 1, whose predictions are SHIFT less.
    with serve(shadow_root, model_poll_seconds=0, shadow_versions={"diabetes": 1}) as client:
        got = answers(client, rows)
        report = shadow_after(client, len(rows))
        exported = samples(client)
        page = client.get("/").text
    assert got == expected  # the same answers, to the last bit, all from version 2
    assert {b["model_version"] for b in got} == {2}
    assert report["status"] == "ok" and report["error"] is None
    assert (report["model_version"], report["shadow_version"]) == (2, 1)
    assert report["task"] == "regression" and report["agreement"] is None
    assert report["rows"] == len(rows) and report["dropped_rows"] == 0
    assert report["mean_abs"] == pytest.approx(SHIFT, abs=UNITS_TOLERANCE)
    assert report["p99_abs"] == pytest.approx(SHIFT, abs=UNITS_TOLERANCE)
    latency = report["latency"]
    assert 1 <= latency["calls"] <= len(requests_of(rows))
    assert 0 < latency["p50_seconds"] <= latency["p99_seconds"] < 1
    assert latency["rows_per_call"] * latency["calls"] == pytest.approx(len(rows))

    model = ("model", "diabetes")
    pair = (model, ("shadow_version", "1"))
    assert exported["tabserve_shadow_rows_total", pair] == len(rows)
    assert exported["tabserve_shadow_dropped_total", (model,)] == 0
    assert exported["tabserve_shadow_latency_seconds_count", (model,)] == latency["calls"]
    for statistic in ("mean_abs", "p99_abs"):
        value = exported["tabserve_shadow_difference", (*pair, ("statistic", statistic))]
        assert value == pytest.approx(SHIFT, abs=UNITS_TOLERANCE)
    assert ("tabserve_shadow_difference", (*pair, ("statistic", "agreement"))) not in exported

    assert '<h2 id="shadow">Shadow scoring</h2>' in page
    assert f'<td class="num">{len(rows):,}</td><td class="num">{SHIFT:.4g}</td>' in page


def test_a_classifier_shadow_reports_its_agreement(shadow_root: Path, messy_csv: Path) -> None:
    rows, _ = messy_test_rows(messy_csv, "label")
    rows = rows * 3
    with serve(shadow_root, "labels", model_poll_seconds=0) as plain:
        expected = answers(plain, rows)
    with serve(
        shadow_root, "labels", model_poll_seconds=0, shadow_versions={"labels": 1}
    ) as client:
        got = answers(client, rows)
        report = shadow_after(client, len(rows))
    assert got == expected
    # The same network: version 1 names its first two classes the other way round, so the two
    # agree exactly on the rows given the third class.
    served = [label for body in got for label in body["predictions"]]
    classes = got[0]["classes"]
    agreeing = np.mean([label == classes[2] for label in served])
    assert 0 < agreeing < 1
    assert report["agreement"] == pytest.approx(agreeing)
    # Matched by label, the probabilities differ by the two swapped classes' difference.
    probabilities = np.array([p for body in got for p in body["probabilities"]])
    distance = np.abs(probabilities[:, 0] - probabilities[:, 1])
    assert report["mean_abs"] == pytest.approx(distance.mean(), abs=1e-5)
    assert report["p99_abs"] == pytest.approx(np.percentile(distance, 99), abs=1e-5)
    assert report["rows"] == len(rows) and report["task"] == "classification"


@pytest.mark.parametrize(
    ("shadow", "error"),
    [(9, "version not found"), (3, "takes different features from version 2")],
)
def test_a_shadow_that_cannot_score_is_reported_and_skipped(
    shadow_root: Path,
    model_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shadow: int,
    error: str,
) -> None:
    shutil.copytree(shadow_root / "diabetes", tmp_path / "diabetes")
    shutil.copytree(model_root / "messy" / "1", tmp_path / "diabetes" / "3")  # other features
    rows = diabetes_rows(20, seed=2)
    settings: dict[str, Any] = {"model_version": 2, "model_poll_seconds": 0}
    with serve(tmp_path, **settings) as plain:
        expected = answers(plain, rows)
    with (
        caplog.at_level(logging.ERROR, logger=shadow_module.__name__),
        serve(tmp_path, shadow_versions={"diabetes": shadow}, **settings) as client,
    ):
        assert client.get("/readyz").status_code == 200
        got = answers(client, rows)
        report = client.get("/model/shadow").json()
        page = client.get("/").text
        exported = samples(client)
    assert got == expected
    assert report["status"] == "unavailable"
    assert (report["model_version"], report["shadow_version"]) == (2, shadow)
    assert error in report["error"]
    assert report["rows"] == 0 and report["mean_abs"] is None
    (logged,) = [r for r in caplog.records if r.name == shadow_module.__name__]
    assert logged.levelno == logging.ERROR and error in logged.getMessage()
    assert "unavailable" in page and error in page
    assert not any(name.startswith("tabserve_shadow_rows") for name, _ in exported)


def test_the_shadow_route_is_404_without_a_shadow_in_the_usual_error_shape(
    model_root: Path,
) -> None:
    with serve(model_root, model_poll_seconds=0, shadow_versions={"diabetes": 1}) as client:
        answers(client, diabetes_rows(5, seed=3))
        same = shadow_after(client, 5)
        versioned = client.get("/models/diabetes/versions/1/shadow")
        missing = {
            path: client.get(path)
            for path in (
                "/models/messy/shadow",
                "/models/nothing/shadow",
                "/models/diabetes/versions/2/shadow",
            )
        }
        paths = client.get("/openapi.json").json()["paths"]
    # The served version as its own shadow: no difference at all.
    assert same["mean_abs"] == pytest.approx(0, abs=UNITS_TOLERANCE)
    assert versioned.status_code == 200 and versioned.json()["rows"] == 5
    assert {path: r.status_code for path, r in missing.items()} == dict.fromkeys(missing, 404)
    assert missing["/models/messy/shadow"].json() == {
        "error": "model 'messy' has no shadow version (set one in SHADOW_VERSIONS)"
    }
    assert set(missing["/models/nothing/shadow"].json()) == {"error"}
    for path in (
        "/model/shadow",
        "/models/{name}/shadow",
        "/models/{name}/versions/{version}/shadow",
    ):
        operation = paths[path]["get"]
        assert set(operation["responses"]) >= {"200", "404", "503"}
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ShadowReport"
        }
    with serve(model_root, model_poll_seconds=0) as client:
        answer = client.get("/model/shadow")
    assert answer.status_code == 404 and "SHADOW_VERSIONS" in answer.json()["error"]


def test_a_new_served_version_starts_the_figures_afresh_and_keeps_the_shadow(
    shadow_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[tuple[str | None, int | None]] = []

    def counted(settings: Any, name: str | None = None, version: int | None = None) -> Predictor:
        loads.append((name, version))
        return load_predictor(settings, name, version)

    monkeypatch.setattr(shadow_module, "load_predictor", counted)
    shutil.copytree(shadow_root / "diabetes", tmp_path / "diabetes")
    settings: dict[str, Any] = {"model_poll_seconds": 0.1, "shadow_versions": {"diabetes": 1}}
    with serve(tmp_path, **settings) as client:
        answers(client, diabetes_rows(30, seed=4))
        before = shadow_after(client, 30)
        shifted_copy(shadow_root / "diabetes" / "1", tmp_path / "diabetes" / "3", 2 * SHIFT)
        deadline = time.monotonic() + 20
        while client.get("/model").json()["version"] != 3:
            assert time.monotonic() < deadline, "version 3 was not loaded"
            time.sleep(0.05)
        fresh = client.get("/model/shadow").json()
        answers(client, diabetes_rows(20, seed=5))
        after = shadow_after(client, 20)
    assert before["model_version"] == 2 and before["rows"] == 30
    assert before["mean_abs"] == pytest.approx(SHIFT, abs=UNITS_TOLERANCE)
    assert fresh["model_version"] == 3 and fresh["rows"] == 0 and fresh["mean_abs"] is None
    assert after["rows"] == 20 and after["shadow_version"] == 1
    assert after["mean_abs"] == pytest.approx(2 * SHIFT, abs=UNITS_TOLERANCE)
    assert loads == [("diabetes", 1)]  # loaded once, kept across the reload


def test_shutting_down_scores_what_is_queued(shadow_root: Path) -> None:
    rows = diabetes_rows(40, seed=6)
    with serve(shadow_root, model_poll_seconds=0, shadow_versions={"diabetes": 1}) as client:
        served = client.app.state.service.models["diabetes"]  # type: ignore[attr-defined]
        answers(client, rows)
    # The lifespan has closed the model: its shadow scored its queue before it stopped.
    report = served.inference.shadow.report()
    assert report["rows"] == len(rows)


@pytest.fixture(scope="module")
def diabetes(model_root: Path) -> Predictor:
    return load_predictor(settings_for(model_root))


class HeldRuntime:
    """The diabetes runtime, holding every call until released."""

    name, fast = "held", True
    input_width: int | None = None

    def __init__(self, predictor: Predictor) -> None:
        self._runtime = predictor.runtime
        self.release = threading.Event()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        assert self.release.wait(10)
        return self._runtime(x)


class Counts:
    def __init__(self) -> None:
        self.compared = self.dropped = self.calls = 0

    def hooks(self) -> ShadowHooks:
        def compared(n: int) -> None:
            self.compared += n

        def dropped(n: int) -> None:
            self.dropped += n

        def call(_: float) -> None:
            self.calls += 1

        return ShadowHooks(compared, dropped, call)


def test_a_full_queue_drops_and_counts_without_waiting(diabetes: Predictor) -> None:
    held = HeldRuntime(diabetes)
    counts = Counts()
    shadow = dataclasses.replace(diabetes, runtime=held)
    scorer = ShadowScorer(diabetes, shadow, window_rows=100, queue_rows=10, hooks=counts.hooks())
    rows = diabetes_rows(2, seed=7)
    answer = diabetes.predict_rows(rows)
    started = time.perf_counter()
    for _ in range(50):
        scorer.submit(rows, answer)  # two rows each: five fit, held until scored
    submitting = time.perf_counter() - started
    held.release.set()
    scorer.close()
    report = scorer.report()
    assert (report["rows"], report["dropped_rows"]) == (10, 90)
    assert (counts.compared, counts.dropped) == (10, 90)
    assert counts.calls == report["latency"]["calls"] >= 1
    assert submitting < 0.5  # never waited for the shadow


def test_the_figures_cover_the_last_window_rows(diabetes: Predictor) -> None:
    scorer = ShadowScorer(diabetes, diabetes, window_rows=100, queue_rows=1_000)
    rows = diabetes_rows(300, seed=8)
    truth = diabetes.predict_rows(rows).values
    # The "served" answers are the shadow's plus 1, minus 2, plus 3, ..., minus 300.
    for start in range(0, 300, 60):
        served = [truth[i] + (i + 1) * (-1) ** i for i in range(start, start + 60)]
        scorer.submit(rows[start : start + 60], Decoded(values=served))
    scorer.close()
    report = scorer.report()
    last = np.arange(201, 301)
    assert report["rows"] == 300
    assert report["mean_abs"] == pytest.approx(last.mean(), abs=UNITS_TOLERANCE)
    assert report["p99_abs"] == pytest.approx(np.percentile(last, 99), abs=UNITS_TOLERANCE)


class FailingRuntime(HeldRuntime):
    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("the shadow broke")


def test_a_failing_shadow_counts_its_rows_dropped_and_keeps_going(
    diabetes: Predictor, caplog: pytest.LogCaptureFixture
) -> None:
    shadow = dataclasses.replace(diabetes, runtime=FailingRuntime(diabetes))
    scorer = ShadowScorer(diabetes, shadow, window_rows=100, queue_rows=1_000)
    rows = diabetes_rows(3, seed=9)
    answer = diabetes.predict_rows(rows)
    with caplog.at_level(logging.ERROR, logger=shadow_module.__name__):
        scorer.submit(rows, answer)
        deadline = time.monotonic() + 5
        while scorer.report()["dropped_rows"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        scorer.submit(rows, answer)
        scorer.close()
    report = scorer.report()
    assert (report["rows"], report["dropped_rows"]) == (0, 6)
    logged = [r for r in caplog.records if r.name == shadow_module.__name__]
    assert len(logged) == 1  # once, not once a call


def test_rows_the_shadow_answers_with_non_finite_numbers_are_dropped(diabetes: Predictor) -> None:
    document = diabetes.stats.model_dump()
    for feature in document["features"]:
        if feature["name"] == "bmi":
            feature["std"] = 1e-300  # any bmi given leaves float32's range once standardised
    stats = PreprocessingStats.model_validate(document)
    scorer = ShadowScorer(
        diabetes, dataclasses.replace(diabetes, stats=stats), window_rows=100, queue_rows=1_000
    )
    rows = diabetes_rows(14, seed=10)  # bmi is missing in rows 0 and 7 only
    scorer.submit(rows, diabetes.predict_rows(rows))
    scorer.close()
    report = scorer.report()
    assert (report["rows"], report["dropped_rows"]) == (2, 12)
    assert report["mean_abs"] is not None and np.isfinite(report["mean_abs"])
