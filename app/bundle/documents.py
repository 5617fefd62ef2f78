"""The base of the bundle's JSON documents and the format version they are written in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

FORMAT_VERSION = 2


class Strict(BaseModel):
    """A bundle document: unknown fields are errors, and loaded documents are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
