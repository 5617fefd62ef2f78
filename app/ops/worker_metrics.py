"""The figures of workers that share one port (WORKERS above 1): each worker publishes what
it computes for itself, and the worker answering a scrape combines everyone's (see
app/ops/metrics.py for which figure is combined how)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from app.ops import workers
from app.ops.live_cost import LiveCost, LiveCostFigures, pooled

logger = logging.getLogger(__name__)

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


IN_FLIGHT = "tabserve_http_requests_in_flight"
IN_FLIGHT_HELP = "HTTP requests being answered now."
MODEL_INFO = "tabserve_model_info"
MODEL_INFO_HELP = "1 for each model version being served, with its runtime."


class FunctionGauge:
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


class ServedCollector:
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


class Snapshots:
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
