"""Live drift: the rows a served model version predicts, counted into its training data's bins
over a rolling window, and how far their distributions are from the training data's.

Counting stays off the request's path: a model call only copies its rows into buffers
allocated once (a lock and three slice assignments); they are counted together, with
vectorised numpy, once a few hundred rows have gathered or when someone asks for the figures.

The statistics and their thresholds:
- Population stability index, sum((live - reference) * ln(live / reference)) over the bins,
  each share floored at 1e-4: below 0.1 no significant change, 0.1 to 0.25 a moderate one,
  0.25 and above a significant one (Siddiqi, *Credit Risk Scorecards*, 2006; the bands
  Evidently and NannyML document for PSI).
- Jensen-Shannon distance (base 2, between 0 and 1): 0.1 is the drift threshold Evidently
  uses by default for it, and NannyML's default too.
- A status per feature and for the output: `alert` from PSI 0.25, `warn` from PSI 0.1 or
  JS 0.1, else `ok`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.bundle import PreprocessingStats
from app.bundle.reference import OUTPUT, BinCounter, Distribution, ReferenceDistributions

Status = Literal["ok", "warn", "alert"]
STATUS_LEVEL: dict[Status, int] = {"ok": 0, "warn": 1, "alert": 2}

PSI_WARN, PSI_ALERT = 0.1, 0.25
JS_WARN = 0.1
MIN_ROWS = 1_000
"""Rows a window needs before drift is reported (fewer when the window itself is smaller):
with fewer, sampling noise alone moves ten bins' shares by several points."""
FOLD_ROWS = 512
"""Rows gathered before they are counted, when nobody asks sooner."""
SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class _Block:
    rows: int
    counts: np.ndarray


class DriftMonitor:
    """Counts of one model version's predicted rows over the last `window_rows` or so."""

    def __init__(
        self, stats: PreprocessingStats, reference: ReferenceDistributions, window_rows: int
    ) -> None:
        self.reference = reference
        self.window_rows = window_rows
        self.min_rows = min(MIN_ROWS, window_rows)
        self._counter = BinCounter(stats, reference)
        self._lock = threading.Lock()
        # Rows wait in buffers allocated once: joining hundreds of one-row arrays cost more
        # than counting them.
        width, outputs = stats.input_width, stats.target.output_width
        self._x = np.empty((FOLD_ROWS, width), dtype=np.float32)
        self._missing = np.empty((FOLD_ROWS, len(stats.features)), dtype=bool)
        self._outputs = np.empty((FOLD_ROWS, outputs), dtype=np.float32)
        self._pending_rows = 0
        self._blocks: deque[_Block] = deque()
        self._rows = 0
        self._totals = np.zeros(self._counter.total, dtype=np.int64)

    def observe(self, x: np.ndarray, missing: np.ndarray, outputs: np.ndarray) -> None:
        """A model call's inputs, missing cells and outputs."""
        with self._lock:
            start, n = self._pending_rows, len(x)
            if start + n > FOLD_ROWS:
                self._fold()
                start = 0
            if n >= FOLD_ROWS:  # a large call is counted as it is
                self._add(self._counter.count(x, missing, outputs), n)
                return
            self._x[start : start + n] = x
            self._missing[start : start + n] = missing
            self._outputs[start : start + n] = outputs
            self._pending_rows = start + n

    def report(self) -> dict[str, Any]:
        """The window's distances from the reference, per feature and for the output."""
        with self._lock:
            self._fold()
            rows, totals = self._rows, self._totals.copy()
        answer: dict[str, Any] = {
            "window_rows": self.window_rows,
            "rows": rows,
            "min_rows": self.min_rows,
        }
        if rows < self.min_rows:
            return {
                **answer,
                "status": "collecting",
                "message": f"{rows} rows seen; drift is reported from {self.min_rows}",
                "features": {},
                "output": None,
            }
        live = self._counter.split(totals)
        features = {
            name: _compare(self.reference.features[name], live[name], rows)
            for name in self._counter.names
        }
        output = _compare(self.reference.output, live[OUTPUT], rows)
        statuses = [f["status"] for f in features.values()] + [output["status"]]
        worst = max(statuses, key=lambda s: STATUS_LEVEL[s])
        return {**answer, "status": worst, "features": features, "output": output}

    def _fold(self) -> None:
        n, self._pending_rows = self._pending_rows, 0
        if n:
            self._add(self._counter.count(self._x[:n], self._missing[:n], self._outputs[:n]), n)

    def _add(self, counts: np.ndarray, rows: int) -> None:
        self._blocks.append(_Block(rows, counts))
        self._totals += counts
        self._rows += rows
        while self._rows - self._blocks[0].rows >= self.window_rows:
            old = self._blocks.popleft()
            self._totals -= old.counts
            self._rows -= old.rows


def _compare(reference: Distribution, counts: np.ndarray, rows: int) -> dict[str, Any]:
    expected = np.asarray(reference.shares)
    actual = counts / max(rows, 1)
    psi = population_stability_index(expected, actual)
    js = jensen_shannon_distance(expected, actual)
    figures: dict[str, Any] = {"kind": reference.kind, "psi": psi, "js": js}
    if reference.kind in ("numeric", "categorical"):
        figures |= {
            "missing_rate": float(actual[-1]),
            "reference_missing_rate": float(expected[-1]),
        }
    if reference.kind == "categorical":
        figures |= {
            "out_of_vocabulary_rate": float(actual[-2]),
            "reference_out_of_vocabulary_rate": float(expected[-2]),
        }
    figures["status"] = status_of(psi, js)
    return figures


def status_of(psi: float, js: float) -> Status:
    if psi >= PSI_ALERT:
        return "alert"
    if psi >= PSI_WARN or js >= JS_WARN:
        return "warn"
    return "ok"


def population_stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, SHARE_FLOOR), np.maximum(actual, SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """sqrt of the Jensen-Shannon divergence in bits, as `scipy.spatial.distance.jensenshannon`
    with base 2."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log2(a[present] / m[present])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))
