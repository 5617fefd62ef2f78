"""Zero-downtime reloads: watch MODEL_DIR and swap model versions in as they come and go.

As TF Serving's file-system polling: the newest loadable version of each model is served,
unless pinned. A new version is loaded, checked and warmed off the event loop, then swapped
in at once; requests that already took the old one finish on it. A version that fails is
rejected (logged and counted once), and the one serving keeps serving. Removing the served
version rolls back to the newest remaining one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from app.bundle import list_models
from app.model.loading import load_predictor
from app.model.predictor import Predictor
from app.model.shadow import ShadowVersions
from app.model.state import ServedModel, ServiceState
from app.ops.metrics import Metrics
from app.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Candidate:
    name: str
    version: int
    # A rejected version is retried only if its directory is replaced: a new inode or change
    # time (ctime, which copies and renames cannot carry over from elsewhere, unlike mtime).
    identity: tuple[str, int, int, int]


class ModelWatcher:
    def __init__(
        self,
        settings: Settings,
        state: ServiceState,
        metrics: Metrics,
        build: Callable[[Predictor], ServedModel],
        shadows: ShadowVersions | None = None,
    ) -> None:
        """`shadows`, when given, loads the shadow of a model that loads a version and has
        none loaded yet (a new model, or a shadow that failed before)."""
        self._settings = settings
        self._state = state
        self._metrics = metrics
        self._build = build
        self._shadows = shadows
        self._rejected: set[tuple[str, int, int, int]] = set()
        self._orphaned: set[tuple[str, int]] = set()
        self._retiring: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Poll every MODEL_POLL_SECONDS until cancelled; a failing poll is logged, not fatal."""
        while True:
            await asyncio.sleep(self._settings.model_poll_seconds)
            try:
                await self.poll()
            except Exception:
                logger.exception("model directory scan failed; serving continues unchanged")

    async def poll(self) -> None:
        """One scan: load, check and swap in whatever should be served and is not."""
        for candidate in await anyio.to_thread.run_sync(self._plan):
            await self._load(candidate)

    async def _load(self, candidate: _Candidate) -> None:
        name, version = candidate.name, candidate.version
        try:
            predictor = await anyio.to_thread.run_sync(
                load_predictor, self._settings, name, version
            )
        except Exception as exc:
            self._rejected.add(candidate.identity)
            self._metrics.observe_load(name, "reload", ok=False)
            logger.error(
                "rejected model %s version %d, serving continues unchanged: %s",
                name,
                version,
                exc,
                extra={"model_name": name, "model_version": version},
            )
            return
        if self._shadows is not None:
            await anyio.to_thread.run_sync(self._shadows.load, [name])
        old = self._state.swap(self._build(predictor))
        self._metrics.observe_load(name, "reload", ok=True)
        self._metrics.serving(predictor)
        logger.info(
            "now serving model %s version %d (was %s)",
            name,
            version,
            "none" if old is None else old.predictor.version,
            extra={"model_name": name, "model_version": version},
        )
        if old is not None:
            self._retire(old)

    def _retire(self, old: ServedModel) -> None:
        # Requests that took `old` before the swap may still submit to its batcher; each of
        # them answers or times out within REQUEST_TIMEOUT_SECONDS, so stop it after that.
        async def retire() -> None:
            await asyncio.sleep(self._settings.request_timeout_seconds + 1)
            old.inference.close(wait=False)

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _plan(self) -> list[_Candidate]:
        """What to load: for each model, its pinned or newest version not yet rejected, when
        that is not the one served. Runs in a thread (file system calls)."""
        root = self._settings.model_dir
        models = self._state.models
        on_disk = list_models(root)
        plan = []
        for name in sorted(on_disk.keys() | models.keys()):
            served = models.get(name)
            pinned = self._settings.pinned_version(name)
            if pinned is not None and served is not None:
                continue  # a pinned version never changes
            versions = on_disk.get(name, [])
            wanted = [pinned] if pinned is not None else versions[::-1]
            candidates = (_candidate(root, name, v) for v in wanted if v in versions)
            best = next((c for c in candidates if c and c.identity not in self._rejected), None)
            if best is None:
                if served is not None:
                    self._warn_orphaned(served.predictor, versions)
                continue
            if served is None or served.predictor.version != best.version:
                plan.append(best)
        return plan

    def _warn_orphaned(self, predictor: Predictor, versions: list[int]) -> None:
        key = (predictor.name, predictor.version)
        if predictor.version not in versions and key not in self._orphaned:
            self._orphaned.add(key)
            logger.warning(
                "model %s version %d was removed and no other version can be served; "
                "it keeps serving from memory",
                *key,
            )


def _candidate(root: Path, name: str, version: int) -> _Candidate | None:
    try:
        stat = (root / name / str(version)).stat()
    except OSError:
        return None  # removed between listing and looking
    return _Candidate(name, version, (name, version, stat.st_ino, stat.st_ctime_ns))
