"""Service settings, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting has a plain upper-case environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    model_dir: Path = Path("models")
    """Root directory holding bundles as `<model_dir>/<name>/<version>/`."""

    model_name: str = Field(default="default", min_length=1)
    """Which model under `model_dir` to serve."""

    model_version: int | None = Field(default=None, ge=1)
    """Pin this version; unset serves the newest version found at start-up."""

    max_rows: int = Field(default=10_000, ge=1)
    """Most rows accepted in one prediction request; more is answered with 413."""

    host: str = "0.0.0.0"  # noqa: S104 (a container's port is reached through all interfaces)
    """Address the server binds to (used by `python -m app`)."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port the server listens on (used by `python -m app` and the container health check)."""

    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Log level of the service and of uvicorn."""
