"""Shadow scoring: another version of a served model scores the same rows off the request's path,
and how far its predictions are from the served ones is reported, to decide on promoting it.

SHADOW_VERSIONS names the version per model; it is loaded as served versions are, once, and
kept. A request only appends its rows and its answer to a queue bounded in rows (a lock and an
append; rows that would not fit are counted, not compared, and never waited for). One worker
thread per served version wakes GATHER_SECONDS after the first rows arrive and scores them in
bulk: one encoding with the shadow's own statistics and one call of its own runtime per
CHUNK_ROWS rows. Bulk is what keeps a shadow cheap: a call per request would cost about what
serving the request costs. The shadow is loaded apart from the served version, with a runtime
of its own that only shadow workers call (a LiteRT runtime keeps an interpreter per thread).

The figures cover the last SHADOW_WINDOW_ROWS rows compared, in a numpy ring buffer:
- regression: the mean and 99th percentile of the absolute difference, in the target's units;
- classification: the share of rows given the same class (`agreement`), and the mean and 99th
  percentile of the total variation distance between the two probability vectors (half their
  L1 distance; with two classes, how far apart the two P(positive) are) when both versions
  have the same classes, in any order.
A new served version starts them afresh: they compare one pair of versions. The comparison
and its window are in app/model/shadow_figures.py.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.bundle import Decoded
from app.model.loading import load_predictor
from app.model.predictor import Predictor
from app.model.shadow_figures import Comparison, Ring, latency_figures
from app.settings import Settings

if TYPE_CHECKING:  # inference imports this module
    from app.model.predictor import Rows

logger = logging.getLogger(__name__)

GATHER_SECONDS = 0.05
"""How long the worker lets rows gather after the first arrives: at a few thousand requests a
second, hundreds of rows per shadow call."""
CHUNK_ROWS = 1024
"""Most rows in one shadow call (whole requests; a larger request goes alone), so that a call
holds up the event loop for a bounded time: it shares the interpreter lock, and 1,024 rows of
10 features take about a millisecond."""


def _ignore(_: float) -> None:
    pass


@dataclass(frozen=True)
class ShadowHooks:
    """What the metrics hear: rows compared, rows dropped, and each shadow call's seconds."""

    compared: Callable[[int], None] = _ignore
    dropped: Callable[[int], None] = _ignore
    call: Callable[[float], None] = _ignore


@dataclass(frozen=True)
class UnavailableShadow:
    """A shadow configured for a model that does not score: it failed to load, or it does not
    take the served version's rows. The served model is unaffected."""

    served: Predictor
    shadow_version: int
    error: str

    def report(self) -> dict[str, Any]:
        return {
            "model_name": self.served.name,
            "model_version": self.served.version,
            "shadow_version": self.shadow_version,
            "status": "unavailable",
            "error": self.error,
        }


class ShadowScorer:
    """Scores what one served version answers with the shadow version, in a thread of its own,
    and keeps how far apart the two are over the last `window_rows` rows."""

    def __init__(
        self,
        served: Predictor,
        shadow: Predictor,
        window_rows: int,
        queue_rows: int,
        hooks: ShadowHooks | None = None,
    ) -> None:
        self.served, self.shadow = served, shadow
        self.window_rows, self.queue_rows = window_rows, queue_rows
        self._hooks = hooks or ShadowHooks()
        self._compare = Comparison(served, shadow)
        # The queue's lock, taken on the request's path: held for an append only.
        self._lock = threading.Lock()
        self._queue: list[tuple[Rows, Decoded]] = []
        self._queued_rows = 0
        self._dropped = 0
        self._closed = False
        self._wake, self._stop = threading.Event(), threading.Event()
        # The figures' lock: reading them never holds up a request.
        self._figures_lock = threading.Lock()
        self._ring = Ring(window_rows, self._compare.columns)
        self._rows = 0
        self._calls: deque[tuple[float, int]] = deque()
        self._call_rows = 0
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=f"shadow-{served.name}", daemon=True)
        self._thread.start()

    def submit(self, rows: Rows, served: Decoded) -> None:
        """Queue a request's rows and its answer for scoring, or count them dropped when they
        would not fit: never wait."""
        n = len(rows)
        with self._lock:
            if not self._closed and self._queued_rows + n <= self.queue_rows:
                self._queue.append((rows, served))
                self._queued_rows += n
                if len(self._queue) == 1:
                    self._wake.set()
                return
            self._dropped += n
        self._hooks.dropped(n)

    def close(self, *, wait: bool = True) -> None:
        """Score what is queued, then stop the worker; `wait` blocks until it has."""
        with self._lock:
            self._closed = True
            self._wake.set()
        self._stop.set()
        if wait:
            self._thread.join()

    def report(self) -> dict[str, Any]:
        """The figures over the window, with the versions compared."""
        with self._figures_lock:
            values = self._ring.values().copy()
            rows, calls = self._rows, list(self._calls)
        with self._lock:
            dropped = self._dropped
        return {
            "model_name": self.served.name,
            "model_version": self.served.version,
            "shadow_version": self.shadow.version,
            "status": "ok",
            "error": None,
            "task": self.served.metadata.task,
            "window_rows": self.window_rows,
            "rows": rows,
            "dropped_rows": dropped,
            **self._compare.figures(values),
            "latency": latency_figures(calls),
        }

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._stop.wait(GATHER_SECONDS)  # cut short by close
            with self._lock:
                taken, self._queue = self._queue, []
                self._wake.clear()
                closed = self._closed  # nothing is queued once it is set
            for chunk in _chunks(taken, CHUNK_ROWS):
                self._score(chunk)
            if closed:
                return

    def _score(self, items: list[tuple[Rows, Decoded]]) -> None:
        rows = items[0][0] if len(items) == 1 else list(itertools.chain(*(r for r, _ in items)))
        n, compared = len(rows), 0
        try:
            differences, seconds = self._differences(rows, [answer for _, answer in items])
            self._record(differences, seconds, n)
            compared = len(differences)
            self._hooks.call(seconds)
        except Exception:  # the shadow must never stop; its rows are counted as dropped
            if not self._failed:
                self._failed = True
                logger.exception(
                    "shadow version %d of model %s failed to score %d rows; counted as dropped",
                    self.shadow.version,
                    self.shadow.name,
                    n,
                )
        finally:
            with self._lock:
                # Rows count against the bound until scored: they are in memory till then.
                self._queued_rows -= n
                self._dropped += n - compared
        if compared:
            self._hooks.compared(compared)
        if n > compared:
            self._hooks.dropped(n - compared)

    def _differences(self, rows: Rows, served: list[Decoded]) -> tuple[np.ndarray, float]:
        """The per-row comparison of the rows the shadow answers with finite numbers, and the
        seconds the shadow took."""
        started = time.perf_counter()
        # Not Predictor.encode_rows: a chunk may hold more than MAX_ROWS, and a value the
        # shadow cannot standardise gives a non-finite answer, left out below.
        outputs = self.shadow.runtime(self.shadow.stats.encode_rows(rows).x)
        mine = self._compare.decode(outputs)
        seconds = time.perf_counter() - started
        differences = self._compare(mine, served)
        finite = np.isfinite(mine.reshape(len(mine), -1)).all(axis=1)
        return differences[finite & np.isfinite(differences).all(axis=1)], seconds

    def _record(self, differences: np.ndarray, seconds: float, rows: int) -> None:
        with self._figures_lock:
            self._ring.extend(differences)
            self._rows += len(differences)
            self._calls.append((seconds, rows))
            self._call_rows += rows
            while self._call_rows - self._calls[0][1] >= self.window_rows:
                self._call_rows -= self._calls.popleft()[1]


def _chunks(items: list[tuple[Rows, Decoded]], most: int) -> Iterator[list[tuple[Rows, Decoded]]]:
    chunk: list[tuple[Rows, Decoded]] = []
    rows = 0
    for item in items:
        if chunk and rows + len(item[0]) > most:
            yield chunk
            chunk, rows = [], 0
        chunk.append(item)
        rows += len(item[0])
    if chunk:
        yield chunk


Shadow = ShadowScorer | UnavailableShadow


def incompatibility(served: Predictor, shadow: Predictor) -> str | None:
    """Why `shadow` cannot score the rows `served` takes, or None when it can."""
    if shadow.metadata.task != served.metadata.task:
        return (
            f"version {shadow.version} is a {shadow.metadata.task} model and version "
            f"{served.version} a {served.metadata.task} one"
        )
    kinds = {f.name: f.kind for f in served.stats.features}
    theirs = {f.name: f.kind for f in shadow.stats.features}
    if kinds != theirs:
        differ = sorted(kinds.keys() ^ theirs.keys()) or sorted(
            n for n in kinds if kinds[n] != theirs[n]
        )
        return (
            f"version {shadow.version} takes different features from version {served.version} "
            f"({', '.join(differ)})"
        )
    return None


class ShadowVersions:
    """The versions SHADOW_VERSIONS names, each loaded once, as served versions are. A failure
    is kept, to be reported, and retried when its model next loads a version."""

    def __init__(
        self, settings: Settings, hooks: Callable[[str, int], ShadowHooks] | None = None
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._loaded: dict[str, Predictor | str] = {}  # by model: the shadow, or why not

    def load(self, names: Iterable[str]) -> None:
        """Load the shadow of each model in `names` that has one configured and not loaded.
        Blocks (reads and warms a bundle): run it in a worker thread. Never raises."""
        for name in names:
            version = self._settings.shadow_versions.get(name)
            if version is None or isinstance(self._loaded.get(name), Predictor):
                continue
            try:
                self._loaded[name] = load_predictor(self._settings, name, version)
            except Exception as exc:
                self._loaded[name] = str(exc)
                logger.error(
                    "shadow version %d of model %s cannot be loaded and is skipped; the "
                    "served version is unaffected: %s",
                    version,
                    name,
                    exc,
                    extra={"model_name": name, "model_version": version},
                )

    def for_served(self, served: Predictor) -> Shadow | None:
        """The shadow of `served`'s model, comparing afresh with `served`; None when its model
        has none configured."""
        version = self._settings.shadow_versions.get(served.name)
        if version is None:
            return None
        shadow = self._loaded.get(served.name, "not loaded")
        if isinstance(shadow, str):
            return UnavailableShadow(served, version, shadow)
        problem = incompatibility(served, shadow)
        if problem is not None:
            logger.error(
                "shadow version %d of model %s is skipped: %s",
                version,
                served.name,
                problem,
                extra={"model_name": served.name, "model_version": served.version},
            )
            return UnavailableShadow(served, version, problem)
        hooks = None if self._hooks is None else self._hooks(served.name, version)
        return ShadowScorer(
            served,
            shadow,
            self._settings.shadow_window_rows,
            self._settings.shadow_queue_rows,
            hooks,
        )
