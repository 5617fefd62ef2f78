"""The error raised for a bundle that cannot be used; its message names the path."""

from __future__ import annotations

from pathlib import Path


class BundleError(Exception):
    """A bundle that is missing, incomplete or malformed; the message names the path."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
