"""What the request being served has done so far, for its log line and its metrics.

The middleware opens a `RequestInfo` per request in a context variable; the inference code
notes the model and rows in it. Context variables follow the request into the threads it
uses (anyio copies the context), so no route has to pass anything along.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    model_name: str | None = None
    model_version: int | None = None
    rows: int = 0


current: ContextVar[RequestInfo | None] = ContextVar("tabserve_request", default=None)


def note_model(model_name: str, model_version: int) -> None:
    """Record that the current request (if any) is answered by this model version."""
    info = current.get()
    if info is not None:
        info.model_name = model_name
        info.model_version = model_version


def note_rows(rows: int) -> None:
    """Record that the current request (if any) had `rows` rows predicted."""
    info = current.get()
    if info is not None:
        info.rows += rows
