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
  lowest; the process figures per worker, labelled `pid`, with the supervisor's (all in
  app/ops/worker_metrics.py);
- the live cost is every worker's CPU-seconds over every worker's rows (app/ops/live_cost.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.model.drift import DriftMonitor
from app.model.predictor import Predictor
from app.model.shadow import Shadow, ShadowHooks
from app.ops import workers
from app.ops.live_cost import LiveCost
from app.ops.metric_collectors import DriftCollector, LiveCostCollector, ShadowCollector
from app.ops.worker_metrics import (
    IN_FLIGHT,
    IN_FLIGHT_HELP,
    MODEL_INFO,
    MODEL_INFO_HELP,
    FunctionGauge,
    ServedCollector,
    Snapshots,
)

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
            registry.register(LiveCostCollector(self.live_cost))
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
        self.in_flight: Gauge | FunctionGauge
        if not shared:
            self.in_flight = Gauge(IN_FLIGHT, IN_FLIGHT_HELP, registry=registry)
        else:
            self.in_flight = FunctionGauge(IN_FLIGHT, IN_FLIGHT_HELP)
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
            own.register(ServedCollector(self._served))
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
        self._own.register(DriftCollector(monitors))

    def shadow_hooks(self, model: str, shadow_version: int) -> ShadowHooks:
        """The counters a shadow of `model` feeds; their series exist from the start, at 0."""
        rows = self.shadow_rows.labels(model, str(shadow_version))
        latency = self.shadow_latency.labels(model)
        return ShadowHooks(rows.inc, self.shadow_dropped.labels(model).inc, latency.observe)

    def watch_shadows(self, shadows: Callable[[], Iterable[Shadow]]) -> None:
        """Export how far the shadows `shadows` lists are from the served versions, at scrape."""
        self._own.register(ShadowCollector(shadows))

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)

    def _share(self, directory: Path) -> CollectorRegistry:
        """Workers share the port: publish this process's own figures, pool the live cost,
        and answer scrapes for every worker."""
        snapshots = Snapshots(directory, self._own, self.live_cost)
        self.live_cost.pool = snapshots.pooled_cost
        exposed = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(exposed, path=str(directory))  # type: ignore[no-untyped-call]
        exposed.register(snapshots)
        exposed.register(LiveCostCollector(self.live_cost))
        PlatformCollector(registry=exposed)
        snapshots.start()
        return exposed
