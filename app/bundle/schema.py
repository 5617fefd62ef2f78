"""Base of the bundle's JSON documents, their format version, and the bundle error."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

FORMAT_VERSION = 2


class BundleError(Exception):
    """A bundle that is missing, incomplete or malformed; the message names the path."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class Strict(BaseModel):
    """A bundle document: unknown fields are errors, and loaded documents are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
