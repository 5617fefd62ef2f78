"""Several server processes on one port: `WORKERS=N` for `python -m app`.

The process started as `python -m app` becomes a supervisor and serves nothing itself. It
checks that the port is free, makes a fresh directory for the workers' metrics
(PROMETHEUS_MULTIPROC_DIR), and starts N workers: each is `python -m app` with the same options
and environment, told that it is a worker. A worker is the single-process service (it loads
and warms the models, watches MODEL_DIR, drains on SIGTERM), listening on a socket of its own
bound to the same address with SO_REUSEPORT, so that the kernel spreads new connections over
the workers that are ready: a worker's socket takes connections only once its models are
warm.

- A worker that exits while the service runs is replaced (at most one start a second per
  worker), but one that exits with status 2 or 3 could not start (a broken bundle, a setting,
  the port): the next would fail alike, so the supervisor stops the others and exits 2.
- SIGTERM or SIGINT: the supervisor sends SIGTERM to every worker, each drains as a single
  process does (readiness 503, its socket closed, requests in flight finished within
  DRAIN_TIMEOUT_SECONDS), and once all have exited it removes the metrics directory and exits
  0 (1 if a worker failed to stop cleanly). A second SIGINT is passed on as SIGINT, which ends
  the drain at once, as it does for one process.
- When a worker exits, the supervisor removes its live figures from the metrics directory
  (`mark_process_dead` and its snapshot, see app/ops/metrics.py); its counters stay, so the
  totals on /metrics never go back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from app.settings import Settings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's switch to multiprocess mode: where the metric files of every process go."""
SUPERVISOR_ENV = "TABSERVE_SUPERVISOR_PID"
"""Set by the supervisor for its workers: a `python -m app` with it serves as one of them."""
CANNOT_START = (2, 3)
"""Exit statuses of a worker that could not start: `python -m app`'s own (a bundle, a setting)
and uvicorn's (its lifespan or its socket failed)."""
RESTART_SECONDS = 1.0
"""Least time between two starts of the same worker, so that a crashing one does not spin."""
STOP_GRACE_SECONDS = 15.0
"""After SIGTERM, how long past DRAIN_TIMEOUT_SECONDS a worker may take to exit before it is
killed."""
POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1
SNAPSHOT_PREFIX = "worker-"


def supervisor_pid() -> int | None:
    """The supervisor's pid when this process is one of its workers, else None."""
    value = os.environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


def follow_supervisor() -> None:
    """Have the kernel send this worker SIGTERM (a drain) if its supervisor dies without
    stopping it, killed for one: an orphan would hold the port. Linux's PR_SET_PDEATHSIG."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid():  # it died before that took effect
        os.kill(os.getpid(), signal.SIGTERM)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) beside the other workers' (SO_REUSEPORT); the server
    listens on it once the app has started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def snapshot_path(directory: Path, pid: int) -> Path:
    """Where worker `pid` publishes the figures it computes itself (app/ops/metrics.py)."""
    return directory / f"{SNAPSHOT_PREFIX}{pid}.json"


def snapshots(directory: Path) -> Iterator[Path]:
    """The snapshot of every worker running (the supervisor removes an exited one's)."""
    return directory.glob(f"{SNAPSHOT_PREFIX}*.json")


def forget(directory: Path, pid: int) -> None:
    """Worker `pid` has exited: drop its live figures, keep its counters."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    snapshot_path(directory, pid).unlink(missing_ok=True)


def supervise(settings: Settings, command: Sequence[str]) -> int:
    """Run `command` (`python -m app` with this process's options) as WORKERS workers on
    PORT until a signal; the exit status: 0, 1 if a worker did not stop cleanly, 2 if the
    service could not start."""
    if not sys.platform.startswith("linux"):
        # Elsewhere SO_REUSEPORT is missing or does not spread connections over the sockets.
        logger.critical("cannot start: setting WORKERS: more than 1 needs Linux")
        return 2
    for port in (settings.port, settings.grpc_port):
        try:
            if port:
                _check_free(settings.host, port)
        except OSError as exc:
            logger.critical("cannot start: %s:%d: %s", settings.host, port, exc)
            return 2
    try:
        directory = Path(tempfile.mkdtemp(prefix="tabserve-metrics-"))
    except OSError as exc:
        logger.critical("cannot start: a directory for the workers' metrics: %s", exc)
        return 2
    try:
        return _Supervisor(settings, command, directory).run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _check_free(host: str, port: int) -> None:
    """Raise OSError if something listens on (host, port) already, another supervisor's
    workers included (their SO_REUSEPORT would otherwise let ours join them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


@dataclass
class _Worker:
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    start_at: float = 0.0
    """When to start the next one, while `process` is None."""


class _Supervisor:
    def __init__(self, settings: Settings, command: Sequence[str], directory: Path) -> None:
        self.settings = settings
        self.command = list(command)
        self.directory = directory
        self.env = {**os.environ, MULTIPROC_ENV: str(directory), SUPERVISOR_ENV: str(os.getpid())}
        self.workers = [_Worker() for _ in range(settings.workers)]
        self.stopping = False
        self.deadline = 0.0
        self.failed = False
        self.unclean: list[int] = []

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signalled)
        pids = [self._start(worker).pid for worker in self.workers if not self.stopping]
        logger.info(
            "started %d workers on %s:%d: pids %s",
            len(pids),
            self.settings.host,
            self.settings.port,
            ", ".join(map(str, pids)),
        )
        while any(w.process is not None for w in self.workers) or not self.stopping:
            time.sleep(POLL_SECONDS)
            self._reap()
            if self.stopping and time.monotonic() > self.deadline:
                self._kill_stragglers()
        if self.failed:
            return 2
        if self.unclean:
            logger.error("workers exited with statuses %s while stopping", self.unclean)
            return 1
        logger.info("every worker has drained and exited")
        return 0

    def _start(self, worker: _Worker) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(self.command, env=self.env)  # noqa: S603 (ourselves)
        worker.process, worker.started = process, time.monotonic()
        return process

    def _reap(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            process = worker.process
            if process is None:
                if not self.stopping and now >= worker.start_at:
                    logger.info("started worker pid %d", self._start(worker).pid)
                continue
            status = process.poll()
            if status is None:
                continue
            worker.process = None
            forget(self.directory, process.pid)
            if self.stopping:
                if status not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self.unclean.append(status)
            elif status in CANNOT_START:
                logger.critical(
                    "worker pid %d could not start (status %d): stopping the others",
                    process.pid,
                    status,
                )
                self.failed = True
                self._stop(signal.SIGTERM)
            else:
                worker.start_at = max(now, worker.started + RESTART_SECONDS)
                logger.error(
                    "worker pid %d exited with status %d; starting another", process.pid, status
                )

    def _signalled(self, sig: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("signal %d: stopping the workers; each drains its requests in flight", sig)
        self._stop(sig)

    def _stop(self, sig: int) -> None:
        """SIGTERM every worker; a repeated SIGINT is passed on as it is (uvicorn then stops
        waiting for requests in flight)."""
        forward = signal.SIGINT if self.stopping and sig == signal.SIGINT else signal.SIGTERM
        if not self.stopping:
            self.stopping = True
            self.deadline = (
                time.monotonic() + self.settings.drain_timeout_seconds + STOP_GRACE_SECONDS
            )
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(forward)

    def _kill_stragglers(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                logger.error("worker pid %d is still running: killing it", worker.process.pid)
                worker.process.kill()
        self.deadline = float("inf")


def command_for_workers(argv: Sequence[str]) -> list[str]:
    """How a worker is started: this interpreter, `-m app`, the same options."""
    return [sys.executable, "-m", "app", *argv]
