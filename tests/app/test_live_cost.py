"""What predictions cost in the service, live: CPU-seconds per 1,000 predictions over a window,
in /metrics, GET /model and the landing page, with a price when the operator gives one."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.bundle import read_metadata
from app.ops.live_cost import LiveCost
from tests.helpers.service import serve


class Clocks:
    """A wall clock and a CPU counter the test moves by hand."""

    def __init__(self) -> None:
        self.now, self.cpu = 1000.0, 50.0

    def advance(self, seconds: float, cpu: float) -> None:
        self.now += seconds
        self.cpu += cpu


def live(clocks: Clocks, window: float = 60.0, price: float | None = None) -> LiveCost:
    return LiveCost(window, price, clock=lambda: clocks.now, cpu=lambda: clocks.cpu)


def test_cpu_per_1000_predictions_is_the_cpu_over_the_rows_of_the_window() -> None:
    clocks = Clocks()
    cost = live(clocks)
    clocks.advance(10, cpu=2.0)
    cost.add_rows(4_000)
    figures = cost.figures()
    assert figures.window_seconds == pytest.approx(10)
    assert figures.predictions == 4_000
    assert figures.cpu_seconds_per_1000_predictions == pytest.approx(0.5)
    assert figures.cost_per_million_predictions is None  # no price given, none made up


def test_the_window_forgets_what_is_older_than_it() -> None:
    clocks = Clocks()
    cost = live(clocks, window=60)
    clocks.advance(30, cpu=30.0)  # an expensive start: 30 CPU-s for 1,000 rows
    cost.add_rows(1_000)
    assert cost.figures().cpu_seconds_per_1000_predictions == pytest.approx(30)
    for _ in range(6):  # then two minutes of cheap traffic, read every 20 s
        clocks.advance(20, cpu=1.0)
        cost.add_rows(10_000)
        figures = cost.figures()
    # Read every 20 s, the newest reading at least 60 s old is exactly 60 s old.
    assert figures.window_seconds == pytest.approx(60)
    assert figures.predictions == 30_000
    assert figures.cpu_seconds_per_1000_predictions == pytest.approx(0.1)


def test_no_predictions_no_figure_and_a_price_only_when_given() -> None:
    clocks = Clocks()
    idle = live(clocks, price=0.04)
    clocks.advance(5, cpu=0.2)
    assert idle.figures().cpu_seconds_per_1000_predictions is None
    assert idle.figures().cost_per_million_predictions is None
    priced = live(clocks, price=0.04)
    clocks.advance(5, cpu=3.6)
    priced.add_rows(1_000_000)
    figures = priced.figures()
    # 3.6 CPU-s per million rows is 0.001 CPU-hours: at 0.04 an hour, 0.00004.
    assert figures.cost_per_million_predictions == pytest.approx(3.6 / 3600 * 0.04)
    assert figures.cost_per_cpu_hour == 0.04


def gauges(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("tabserve_c")
    }


def csv_body(rows: int) -> bytes:
    features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    values = np.random.default_rng(rows).normal(0, 0.05, size=(rows, len(features)))
    lines = [",".join(features), *(",".join(f"{v:.5f}" for v in row) for row in values)]
    return ("\n".join(lines) + "\n").encode()


def test_the_service_shows_its_live_cost_and_it_moves_with_load(model_root: Path) -> None:
    window = 0.4
    with serve(
        model_root, cost_window_seconds=window, cost_per_cpu_hour=2.5, max_rows=2_000
    ) as client:
        headers = {"content-type": "text/csv"}

        def load(rows: int, requests: int) -> dict[str, float]:
            client.get("/metrics")  # the span starts here
            started = time.monotonic()
            body = csv_body(rows)
            for _ in range(requests):
                assert client.post("/predict", content=body, headers=headers).status_code == 200
            time.sleep(max(0.0, window - (time.monotonic() - started)) + 0.05)
            return gauges(client.get("/metrics").text)

        single = load(1, 300)
        batched = load(1_000, 30)
        for figures, rows in ((single, 300), (batched, 30_000)):
            assert figures["tabserve_cost_window_predictions"] == rows
            assert figures["tabserve_cost_window_seconds"] >= window
            assert figures["tabserve_cpu_seconds_per_1000_predictions"] > 0
            assert figures["tabserve_cost_per_cpu_hour"] == 2.5
            assert figures["tabserve_cost_per_million_predictions"] == pytest.approx(
                figures["tabserve_cpu_seconds_per_1000_predictions"] * 1000 / 3600 * 2.5
            )
        # A row in a request of 1,000 shares the HTTP and parsing cost of one request with
        # 999 others: far cheaper than a row sent alone.
        per_row_alone = single["tabserve_cpu_seconds_per_1000_predictions"]
        per_row_batched = batched["tabserve_cpu_seconds_per_1000_predictions"]
        assert per_row_batched < per_row_alone / 5

        model = client.get("/model").json()
        assert set(model["live_cost"]) == {
            "window_seconds",
            "predictions",
            "cpu_seconds",
            "cpu_seconds_per_1000_predictions",
            "cost_per_cpu_hour",
            "cost_per_million_predictions",
        }
        assert model["live_cost"]["cost_per_cpu_hour"] == 2.5
        # What training measured rides along, as the bundle recorded it.
        recorded = read_metadata(model_root / "diabetes" / "1")
        assert recorded.cost is not None and recorded.feature_importance is not None
        assert model["cost"] == recorded.cost.model_dump(mode="json")
        assert model["feature_importance"] == recorded.feature_importance.model_dump(mode="json")
        page = client.get("/").text
        assert 'id="live-cpu-per-1000"' in page or "no predictions in the last" in page


def test_without_predictions_the_gauge_is_absent_not_zero(model_root: Path) -> None:
    with serve(model_root) as client:
        figures = gauges(client.get("/metrics").text)
        assert figures["tabserve_cost_window_predictions"] == 0
        assert "tabserve_cpu_seconds_per_1000_predictions" not in figures
        assert "tabserve_cost_per_million_predictions" not in figures
        assert "tabserve_cost_per_cpu_hour" not in figures
        assert client.get("/model").json()["live_cost"]["cpu_seconds_per_1000_predictions"] is None
        assert "no predictions in the last" in client.get("/").text
