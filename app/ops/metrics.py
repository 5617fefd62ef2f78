"""The service's Prometheus metrics, one registry per app.

A registry per app (not prometheus-client's global one) lets several apps live in one
process, as they do in the tests. Children of labelled metrics are cached, because
`labels()` costs more than the increment itself and runs for every request.

With several workers (WORKERS, app/ops/workers.py) PROMETHEUS_MULTIPROC_DIR is set and a scrape
answers for all of them, whichever worker takes it:
- counters and histograms are prometheus-client's multiprocess files, one per process, added
  up at scrape: exact, and an exited worker's counts stay in the totals;
- what a process computes for itself (requests in flight, the versions it serves, drift,
  shadow differences, process and garbage-collector figures) each worker publishes as a
  snapshot file every PUBLISH_SECONDS; the worker answering a scrape combines its own, read
  then, with the snapshots of the others running, by `COMBINE`: added up, the highest or the
  lowest; the process figures per worker, labelled `pid`, with the supervisor's;
- the live cost is every worker's CPU-seconds over every worker's rows (app/ops/live_cost.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.model.drift import STATUS_LEVEL, DriftMonitor
from app.model.predictor import Predictor
from app.model.shadow import Shadow, ShadowHooks
from app.ops import workers
from app.ops.live_cost import LiveCost, LiveCostFigures, pooled

logger = logging.getLogger(__name__)

# Latency of answers that take tens of microseconds up to the request timeout.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# Rows per model call: powers of two up to BATCH_MAX_SIZE's default, then large requests.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10_000)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# `*_created` series double the exposition and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

PUBLISH_SECONDS = 1.0
"""How often a worker publishes the figures it computes itself, with several workers."""


def _highest(_: dict[str, str], values: list[float]) -> float:
    return max(values)


def _total(_: dict[str, str], values: list[float]) -> float:
    return sum(values)


def _worst_difference(labels: dict[str, str], values: list[float]) -> float:
    return min(values) if labels.get("statistic") == "agreement" else max(values)


COMBINE: dict[str, Callable[[dict[str, str], list[float]], float]] = {
    # Requests being answered now: by all the workers (each as of its last snapshot).
    "tabserve_http_requests_in_flight": _total,
    # A version is served when any worker serves it: both, while workers swap one in.
    "tabserve_model_info": _highest,
    # Rows in the workers' drift windows together.
    "tabserve_drift_window_rows": _total,
    # Each worker's window is a sample of the traffic: the worst one counts (status 2 from any
    # worker alerts), as the dashboard and the alert rules take the worst of the replicas.
    "tabserve_feature_drift": _highest,
    "tabserve_output_drift": _highest,
    # The furthest a worker's shadow is from its served version: the highest difference, the
    # lowest agreement.
    "tabserve_shadow_difference": _worst_difference,
}
"""How the workers' snapshots of each figure are combined; any other (process_*, python_gc_*)
is given per worker, labelled `pid`."""


class Metrics:
    """Every metric the service exports, named `tabserve_*`."""

    def __init__(self, live_cost: LiveCost | None = None) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.live_cost = live_cost or LiveCost(window_seconds=60.0)
        shared = os.environ.get(workers.MULTIPROC_ENV)
        # What this process computes for itself: exposed by the app, or, when workers share
        # the port, published for whichever worker answers the scrape.
        self._own = own = registry if not shared else CollectorRegistry(auto_describe=False)
        if not shared:
            registry.register(_LiveCostCollector(self.live_cost))
        ProcessCollector(registry=own)
        if not shared:
            PlatformCollector(registry=registry)
        GCCollector(registry=own)
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
        # The middleware sets a function that counts them when scraped.
        self.in_flight: Gauge | _FunctionGauge
        if not shared:
            self.in_flight = Gauge(IN_FLIGHT, IN_FLIGHT_HELP, registry=registry)
        else:
            self.in_flight = _FunctionGauge(IN_FLIGHT, IN_FLIGHT_HELP)
            own.register(self.in_flight)
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
        self._served: dict[str, tuple[str, str, str]] = {}
        self.model_info: Gauge | None = None
        if not shared:
            self.model_info = Gauge(
                MODEL_INFO, MODEL_INFO_HELP, ("model", "version", "runtime"), registry=registry
            )
        else:
            own.register(_ServedCollector(self._served))
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
        self.grpc_requests = Counter(
            "tabserve_grpc_requests",
            "gRPC calls answered, by full method name and status code.",
            ("method", "code"),
            registry=registry,
        )
        self.grpc_latency = Histogram(
            "tabserve_grpc_request_duration_seconds",
            "Time from receiving a gRPC call to its answer, by full method name.",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._grpc_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._rows_children: dict[str, Counter] = {}
        self._exposed = registry
        if shared:
            self._exposed = self._share(Path(shared))

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

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        key = (method, code)
        children = self._grpc_children.get(key)
        if children is None:
            children = (self.grpc_requests.labels(method, code), self.grpc_latency.labels(method))
            self._grpc_children[key] = children
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
        if self.model_info is not None:
            if old is not None and old != labels:
                self.model_info.remove(*old)
            self.model_info.labels(*labels).set(1)
        self._served[predictor.name] = labels
        # Reload series exist from the start at 0, so that `increase()` sees the first one.
        for outcome in ("success", "failure"):
            self.loads.labels(predictor.name, "reload", outcome)

    def watch_drift(self, monitors: Callable[[], Iterable[tuple[str, DriftMonitor]]]) -> None:
        """Export the drift of the monitors `monitors` lists (model name, monitor) at scrape."""
        self._own.register(_DriftCollector(monitors))

    def shadow_hooks(self, model: str, shadow_version: int) -> ShadowHooks:
        """The counters a shadow of `model` feeds; their series exist from the start, at 0."""
        rows = self.shadow_rows.labels(model, str(shadow_version))
        latency = self.shadow_latency.labels(model)
        return ShadowHooks(rows.inc, self.shadow_dropped.labels(model).inc, latency.observe)

    def watch_shadows(self, shadows: Callable[[], Iterable[Shadow]]) -> None:
        """Export how far the shadows `shadows` lists are from the served versions, at scrape."""
        self._own.register(_ShadowCollector(shadows))

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)

    def _share(self, directory: Path) -> CollectorRegistry:
        """Workers share the port: publish this process's own figures, pool the live cost,
        and answer scrapes for every worker."""
        snapshots = _Snapshots(directory, self._own, self.live_cost)
        self.live_cost.pool = snapshots.pooled_cost
        exposed = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(exposed, path=str(directory))  # type: ignore[no-untyped-call]
        exposed.register(snapshots)
        exposed.register(_LiveCostCollector(self.live_cost))
        PlatformCollector(registry=exposed)
        snapshots.start()
        return exposed


IN_FLIGHT = "tabserve_http_requests_in_flight"
IN_FLIGHT_HELP = "HTTP requests being answered now."
MODEL_INFO = "tabserve_model_info"
MODEL_INFO_HELP = "1 for each model version being served, with its runtime."


class _FunctionGauge:
    """An unlabelled gauge whose value a function gives when read (Gauge.set_function, for a
    process publishing its figures to other workers)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._read: Callable[[], float] = lambda: 0.0

    def set_function(self, f: Callable[[], float]) -> None:
        self._read = f

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, value=self._read())]


class _ServedCollector:
    """The model versions this process serves, as `tabserve_model_info` (with workers)."""

    def __init__(self, served: dict[str, tuple[str, str, str]]) -> None:
        self.served = served

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        info = GaugeMetricFamily(
            MODEL_INFO, MODEL_INFO_HELP, labels=("model", "version", "runtime")
        )
        for labels in list(self.served.values()):
            info.add_metric(labels, 1)
        return [info]


_Series = tuple[str, str, tuple[tuple[str, str], ...]]
"""A figure to combine: family, sample name and labels."""


class _Snapshots:
    """Every worker's own figures: this one's published to a file, all read at scrape.

    A thread publishes this process's every PUBLISH_SECONDS; a scrape reads them fresh and
    the other workers' from their files, so they are its own as of now and the others' as of
    at most PUBLISH_SECONDS ago. A file is replaced whole (written aside, then renamed): a
    reader never sees half of one. The supervisor removes an exited worker's.
    """

    def __init__(self, directory: Path, own: CollectorRegistry, live_cost: LiveCost) -> None:
        self.directory = directory
        self.own = own
        self.live_cost = live_cost
        self.pid = os.getpid()
        self.path = workers.snapshot_path(directory, self.pid)
        supervisor = workers.supervisor_pid()
        self.supervisor = None
        if supervisor is not None:
            self.supervisor = (
                str(supervisor),
                ProcessCollector(registry=None, pid=lambda: str(supervisor)),
            )
        self._writing = threading.Lock()
        self._failed = False

    def start(self) -> None:
        self.publish()
        threading.Thread(
            target=self._publish_forever, name="metrics-publisher", daemon=True
        ).start()

    def publish(self) -> None:
        snapshot = {
            "pid": self.pid,
            "families": self._families(),
            "live_cost": self.live_cost.own_figures().model_dump(),
        }
        data = json.dumps(snapshot).encode()
        with self._writing:
            aside = self.path.with_name(f".{self.path.name}.partial")
            aside.write_bytes(data)
            aside.replace(self.path)

    def _families(self) -> list[dict[str, Any]]:
        return [
            {
                "name": family.name,
                "documentation": family.documentation,
                "type": family.type,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in self.own.collect()
        ]

    def read(self) -> list[dict[str, Any]]:
        """The other running workers' latest snapshots."""
        found = []
        for path in workers.snapshots(self.directory):
            if path == self.path:
                continue
            try:
                found.append(json.loads(path.read_bytes()))
            except FileNotFoundError:
                continue  # its worker exited since the listing
        return found

    def pooled_cost(self, own: LiveCostFigures) -> LiveCostFigures:
        """This process's live cost figures together with the other workers' latest."""
        others = [LiveCostFigures.model_validate(s["live_cost"]) for s in self.read()]
        return pooled([own, *others], self.live_cost.cost_per_cpu_hour)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        """This process's figures as of now (not published: the scrape itself would linger in
        them as a request in flight) with the other workers' latest."""
        mine = {"pid": self.pid, "families": self._families()}
        families: dict[str, Metric] = {}
        combined: dict[_Series, list[float]] = defaultdict(list)
        for snapshot in sorted([mine, *self.read()], key=lambda s: int(s["pid"])):
            pid = str(snapshot["pid"])
            for family in snapshot["families"]:
                name = family["name"]
                if name not in families:
                    families[name] = Metric(name, family["documentation"], family["type"])
                for sample, labels, value in family["samples"]:
                    if name in COMBINE:
                        combined[name, sample, tuple(sorted(labels.items()))].append(value)
                    else:
                        families[name].add_sample(sample, {**labels, "pid": pid}, value)
        for (name, sample, labels), values in combined.items():
            families[name].add_sample(sample, dict(labels), COMBINE[name](dict(labels), values))
        if self.supervisor is not None:
            self._add_supervisor(families, *self.supervisor)
        return list(families.values())

    def _add_supervisor(
        self, families: dict[str, Metric], pid: str, collector: ProcessCollector
    ) -> None:
        """The supervisor's process figures (memory, CPU) beside its workers'."""
        for family in collector.collect():
            into = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "pid": pid}, sample.value)

    def _publish_forever(self) -> None:
        while True:
            time.sleep(PUBLISH_SECONDS)
            try:
                self.publish()
            except Exception:
                if not self._failed:  # once: it would repeat every second
                    self._failed = True
                    logger.exception("cannot publish this worker's figures to the others")


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
