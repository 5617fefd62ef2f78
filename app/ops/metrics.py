"""The service's Prometheus metrics, one registry per app.

A registry per app (not prometheus-client's global one) lets several apps live in one
process, as they do in the tests. Children of labelled metrics are cached, because
`labels()` costs more than the increment itself and runs for every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.model.drift import STATUS_LEVEL, DriftMonitor
from app.model.predictor import Predictor
from app.model.shadow import Shadow, ShadowHooks
from app.ops.live_cost import LiveCost

# Latency of answers that take tens of microseconds up to the request timeout.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# Rows per model call: powers of two up to BATCH_MAX_SIZE's default, then large requests.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10_000)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# `*_created` series double the exposition and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric the service exports, named `tabserve_*`."""

    def __init__(self, live_cost: LiveCost | None = None) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.live_cost = live_cost or LiveCost(window_seconds=60.0)
        registry.register(_LiveCostCollector(self.live_cost))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.requests = Counter(
            "tabserve_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "tabserve_http_request_duration_seconds",
            "Time from receiving a request to the end of its answer, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tabserve_http_requests_in_flight",
            "HTTP requests being answered now.",
            registry=registry,
        )  # the middleware sets a function that counts them when scraped
        self.rows = Counter(
            "tabserve_rows_predicted",
            "Rows predicted, by model.",
            ("model",),
            registry=registry,
        )
        self.batch_size = Histogram(
            "tabserve_batch_size_rows",
            "Rows in each model call: a coalesced batch, or one request run alone.",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.loads = Counter(
            "tabserve_model_loads",
            "Model version loads, by model, kind (startup or reload) and outcome "
            "(success or failure).",
            ("model", "kind", "outcome"),
            registry=registry,
        )
        self.model_info = Gauge(
            "tabserve_model_info",
            "1 for each model version being served, with its runtime.",
            ("model", "version", "runtime"),
            registry=registry,
        )
        self.payload_dropped = Counter(
            "tabserve_payload_log_dropped",
            "Payload log entries dropped: the queue was full (PAYLOAD_LOG_QUEUE_ROWS) or the sink "
            "failed. Requests are never delayed for the log.",
            registry=registry,
        )
        self.shadow_rows = Counter(
            "tabserve_shadow_rows",
            "Rows each model's shadow version (SHADOW_VERSIONS) scored and compared with the "
            "served predictions.",
            ("model", "shadow_version"),
            registry=registry,
        )
        self.shadow_dropped = Counter(
            "tabserve_shadow_dropped",
            "Rows not shadow-scored: the queue was full (SHADOW_QUEUE_ROWS), or the shadow "
            "failed or answered a non-finite number. Requests never wait for a shadow.",
            ("model",),
            registry=registry,
        )
        self.shadow_latency = Histogram(
            "tabserve_shadow_latency_seconds",
            "Time of each shadow call, off the request's path: encoding, the shadow's runtime "
            "and decoding, for the rows gathered (up to 1,024).",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._served: dict[str, tuple[str, str, str]] = {}
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._rows_children: dict[str, Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_rows(self, model: str, rows: int) -> None:
        child = self._rows_children.get(model)
        if child is None:
            child = self._rows_children[model] = self.rows.labels(model)
        child.inc(rows)
        self.live_cost.add_rows(rows)

    def observe_load(self, model: str, kind: str, *, ok: bool) -> None:
        self.loads.labels(model, kind, "success" if ok else "failure").inc()

    def serving(self, predictor: Predictor) -> None:
        """Mark `predictor` as the version of its model being served (replacing the last)."""
        labels = (predictor.name, str(predictor.version), predictor.runtime.name)
        old = self._served.get(predictor.name)
        if old is not None and old != labels:
            self.model_info.remove(*old)
        self.model_info.labels(*labels).set(1)
        self._served[predictor.name] = labels
        # Reload series exist from the start at 0, so that `increase()` sees the first one.
        for outcome in ("success", "failure"):
            self.loads.labels(predictor.name, "reload", outcome)

    def watch_drift(self, monitors: Callable[[], Iterable[tuple[str, DriftMonitor]]]) -> None:
        """Export the drift of the monitors `monitors` lists (model name, monitor) at scrape."""
        self.registry.register(_DriftCollector(monitors))

    def shadow_hooks(self, model: str, shadow_version: int) -> ShadowHooks:
        """The counters a shadow of `model` feeds; their series exist from the start, at 0."""
        rows = self.shadow_rows.labels(model, str(shadow_version))
        latency = self.shadow_latency.labels(model)
        return ShadowHooks(rows.inc, self.shadow_dropped.labels(model).inc, latency.observe)

    def watch_shadows(self, shadows: Callable[[], Iterable[Shadow]]) -> None:
        """Export how far the shadows `shadows` lists are from the served versions, at scrape."""
        self.registry.register(_ShadowCollector(shadows))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCostCollector:
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


class _DriftCollector:
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


class _ShadowCollector:
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
