"""Collectors that read the service's own figures at scrape: the live cost, drift and the
shadows' differences."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from app.model.drift import STATUS_LEVEL, DriftMonitor
from app.model.shadow import Shadow
from app.ops.live_cost import LiveCost


class LiveCostCollector:
    """The live cost as gauges, all from one reading per scrape."""

    def __init__(self, live_cost: LiveCost) -> None:
        self.live_cost = live_cost

    def describe(self) -> list[Metric]:
        return []  # figures change by scrape: nothing to check at registration

    def collect(self) -> list[Metric]:
        f = self.live_cost.figures()
        gauges = (
            (
                "tabserve_cost_window_seconds",
                "Seconds the live cost figures cover (the newest span of about "
                "COST_WINDOW_SECONDS).",
                f.window_seconds,
            ),
            (
                "tabserve_cost_window_predictions",
                "Rows predicted in that span, all models.",
                f.predictions,
            ),
            (
                "tabserve_cpu_seconds_per_1000_predictions",
                "CPU-seconds of the process (every thread: HTTP, parsing, batching, the model) "
                "per 1,000 rows predicted, over the live cost window.",
                f.cpu_seconds_per_1000_predictions,
            ),
            (
                "tabserve_cost_per_cpu_hour",
                "COST_PER_CPU_HOUR: the price of a CPU-hour the operator gave.",
                f.cost_per_cpu_hour,
            ),
            (
                "tabserve_cost_per_million_predictions",
                "A million predictions at COST_PER_CPU_HOUR, over the live cost window.",
                f.cost_per_million_predictions,
            ),
        )
        # Without predictions in the window (or a price) a figure is absent, not NaN or 0: no
        # figure beats a made-up one.
        return [
            GaugeMetricFamily(name, documentation, value=value)
            for name, documentation, value in gauges
            if value is not None
        ]


class DriftCollector:
    """Each served model's drift, read at scrape: per feature and for the output, the
    statistics and the status (0 ok, 1 warn, 2 alert), once the window has enough rows."""

    def __init__(self, monitors: Callable[[], Iterable[tuple[str, DriftMonitor]]]) -> None:
        self.monitors = monitors

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        window = GaugeMetricFamily(
            "tabserve_drift_window_rows",
            "Rows in each model's drift window now (drift is reported from a minimum).",
            labels=("model",),
        )
        features = GaugeMetricFamily(
            "tabserve_feature_drift",
            "Live drift of each feature against the training data: psi, js (Jensen-Shannon "
            "distance), missing_rate, out_of_vocabulary_rate, status (0 ok, 1 warn, 2 alert).",
            labels=("model", "feature", "statistic"),
        )
        output = GaugeMetricFamily(
            "tabserve_output_drift",
            "Live drift of the model's output against its output on the training data: psi, "
            "js, status (0 ok, 1 warn, 2 alert).",
            labels=("model", "statistic"),
        )
        for model, monitor in self.monitors():
            report = monitor.report()
            window.add_metric((model,), report["rows"])
            for feature, figures in report["features"].items():
                for statistic, value in _drift_values(figures):
                    features.add_metric((model, feature, statistic), value)
            if report["output"] is not None:
                for statistic, value in _drift_values(report["output"]):
                    output.add_metric((model, statistic), value)
        return [window, features, output]


def _drift_values(figures: dict[str, Any]) -> Iterator[tuple[str, float]]:
    for statistic in ("psi", "js", "missing_rate", "out_of_vocabulary_rate"):
        if figures.get(statistic) is not None:
            yield statistic, float(figures[statistic])
    yield "status", float(STATUS_LEVEL[figures["status"]])


class ShadowCollector:
    """Each scoring shadow's figures over its window, read at scrape."""

    def __init__(self, shadows: Callable[[], Iterable[Shadow]]) -> None:
        self.shadows = shadows

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        difference = GaugeMetricFamily(
            "tabserve_shadow_difference",
            "Each shadow version against the served one over the last SHADOW_WINDOW_ROWS rows: "
            "mean_abs and p99_abs (absolute difference in the target's units; for a classifier, "
            "of the probabilities), agreement (share of rows given the same class).",
            labels=("model", "shadow_version", "statistic"),
        )
        for shadow in self.shadows():
            report = shadow.report()
            labels = (report["model_name"], str(report["shadow_version"]))
            for statistic in ("mean_abs", "p99_abs", "agreement"):
                if report.get(statistic) is not None:
                    difference.add_metric((*labels, statistic), report[statistic])
        return [difference]
