"""`python -m app`: load the models, then serve; a bad bundle or setting exits 2 in one line.

Settings come from the environment; the few options below override their variable, for a
quick local run (`python -m app --port 9000 --model-dir /tmp/models`).

SIGTERM (or Ctrl-C) drains: readiness turns 503 at once, the listening socket closes,
requests in flight and their batches finish within DRAIN_TIMEOUT_SECONDS, and the process
exits 0.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app.bundle import BundleError
from app.http.factory import create_app
from app.model.loading import load_models
from app.model.state import ServiceState
from app.ops.api_keys import ApiKeyError
from app.ops.logs import configure_logging
from app.settings import Settings

logger = logging.getLogger("app")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app that it is draining as soon as a signal arrives."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._state.shutting_down:
            self._state.shutting_down = True
            logger.info("signal %d: draining requests in flight, then exiting", sig)
        super().handle_exit(sig, frame)


_OPTIONS = {
    "--model-dir": "model_dir",
    "--model-name": "model_name",
    "--runtime": "model_runtime",
    "--host": "host",
    "--port": "port",
    "--log-level": "log_level",
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
    overrides = parse_overrides(argv)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        configure_logging("info")
        first = exc.errors()[0]
        logger.critical("cannot start: setting %s: %s", str(first["loc"][0]).upper(), first["msg"])
        return 2
    configure_logging(settings.log_level)
    try:
        app = create_app(settings, load_models(settings))
    except (BundleError, ApiKeyError) as exc:
        logger.critical("cannot start: %s", exc)
        return 2
    server = DrainingServer(_config(app, settings), app.state.service)
    # uvicorn re-raises the signal it stopped for once it has drained, for the default action
    # (death by SIGTERM, status 143); a drained stop is a clean one, so exit 0 instead.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    server.run()
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
