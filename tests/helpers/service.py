"""The service under test: settings, an app in a TestClient, its logging, and posting rows."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from app.ops.logs import configure_logging
from app.settings import Settings


@contextmanager
def service_logging(level: str) -> Iterator[None]:
    """The service's JSON logging at `level` for the block, then the test run's own again (so
    that no later test logs into a stream this one's capture has closed)."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    configure_logging(level)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        logging.captureWarnings(False)


def stderr_until(capfd: pytest.CaptureFixture[str], expected: str, count: int = 1) -> str:
    """Standard error as captured, read until `expected` shows `count` times (at most 2 s):
    access lines go out in batches, within 10 ms of their request."""
    written = capfd.readouterr().err
    deadline = time.monotonic() + 2
    while written.count(expected) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        written += capfd.readouterr().err
    return written


def settings_for(model_root: Path, name: str = "diabetes", **overrides: object) -> Settings:
    return Settings(model_dir=model_root, model_name=name, **overrides)  # type: ignore[arg-type]


def serve(model_root: Path, name: str = "diabetes", **overrides: object) -> TestClient:
    """A client for an app serving model `name`; use it in `with` so the lifespan runs."""
    return TestClient(create_app(settings_for(model_root, name, **overrides)))


def post_rows(client: TestClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(
        "/predict",
        content=json.dumps({"instances": rows}, allow_nan=False),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
