"""`python -m app`: load the models, then serve; a bad bundle or setting exits 2 in one line.

Settings come from the environment; the few options below override their variable, for a
quick local run (`python -m app --port 9000 --model-dir /tmp/models`).

SIGTERM (or Ctrl-C) drains: readiness turns 503 at once, the listening socket closes,
requests in flight and their batches finish within DRAIN_TIMEOUT_SECONDS, and the process
exits 0.

With WORKERS above 1 this process supervises that many workers on the port instead
(app/ops/workers.py): each is `python -m app` again, serving as above on a socket of its own.
The app itself is imported only where it serves, so that a supervisor stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError

from app.ops import workers
from app.ops.logs import configure_logging
from app.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.grpc.server import GrpcServer
    from app.model.state import ServiceState

logger = logging.getLogger("app")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app that it is draining as soon as a signal arrives, and
    starting the gRPC server's drain alongside HTTP's."""

    def __init__(
        self, config: uvicorn.Config, state: ServiceState, grpc: GrpcServer | None = None
    ) -> None:
        super().__init__(config)
        self._state = state
        self._grpc = grpc

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._state.shutting_down:
            self._state.shutting_down = True
            logger.info("signal %d: draining requests in flight, then exiting", sig)
            if self._grpc is not None:
                # A signal handler runs between two steps of the event loop's own code: the
                # drain begins on the loop, not here (and with no loop, nothing listens yet).
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().call_soon_threadsafe(self._grpc.drain)
        super().handle_exit(sig, frame)


_OPTIONS = {
    "--model-dir": "model_dir",
    "--model-name": "model_name",
    "--runtime": "model_runtime",
    "--host": "host",
    "--port": "port",
    "--log-level": "log_level",
    "--workers": "workers",
}


def parse_overrides(argv: Sequence[str] | None) -> dict[str, Any]:
    """The settings given as options, by field name; unset options leave the environment's."""
    p = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve the bundles under MODEL_DIR over HTTP. Every setting is also an "
        "environment variable (MODEL_DIR, PORT, ...); an option given here wins.",
    )
    for option, field in _OPTIONS.items():
        p.add_argument(option, dest=field, default=None, help=f"sets {field.upper()}")
    return {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    overrides = parse_overrides(args)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        configure_logging("info")
        first = exc.errors()[0]
        logger.critical("cannot start: setting %s: %s", str(first["loc"][0]).upper(), first["msg"])
        return 2
    configure_logging(settings.log_level)
    worker = workers.supervisor_pid() is not None
    if settings.workers > 1 and not worker:
        return workers.supervise(settings, workers.command_for_workers(args))
    return _serve(settings, worker=worker)


def _serve(settings: Settings, *, worker: bool) -> int:
    """Load the models, then serve until a signal has drained the requests in flight; a
    worker listens on a socket shared with the other workers' port (SO_REUSEPORT)."""
    from app.bundle import BundleError
    from app.http.factory import create_app
    from app.model.loading import load_models
    from app.ops.api_keys import ApiKeyError

    if worker:
        workers.follow_supervisor()
    try:
        app = create_app(settings, load_models(settings))
    except (BundleError, ApiKeyError) as exc:
        logger.critical("cannot start: %s", exc)
        return 2
    sockets: list[socket.socket] | None = None
    if worker:
        try:
            sockets = [workers.listening_socket(settings.host, settings.port)]
        except OSError as exc:
            logger.critical("cannot start: %s:%d: %s", settings.host, settings.port, exc)
            return 2
    server = DrainingServer(_config(app, settings), app.state.service, app.state.grpc)
    # uvicorn re-raises the signal it stopped for once it has drained, for the default action
    # (death by SIGTERM, status 143); a drained stop is a clean one, so exit 0 instead.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    server.run(sockets=sockets)
    return 0


def _exit_cleanly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,  # the app writes its own, richer line per request
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_seconds),
    )


if __name__ == "__main__":
    sys.exit(main())
