"""The machine and software a run measured, for the JSON record."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.wrk import wrk_version

PACKAGES = (
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "grpcio",
    "protobuf",
    "pydantic",
    "numpy",
)


def cpu_model() -> str:
    """The first `model name` of /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that matter here (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(repo: Path) -> dict[str, Any]:
    """HEAD and whether the working tree has changes (read-only: no index refresh, no locks)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH)
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain"],  # noqa: S607
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def describe_machine(repo: Path) -> dict[str, Any]:
    """CPU, core counts, kernel, Python, package and wrk versions, git revision."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "wrk": wrk_version(),
        "git": git_revision(repo),
    }
