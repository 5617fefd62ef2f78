"""Domain errors, each carrying the HTTP status it is answered with. Imports nothing of the app:
every layer raises them, and `app.http.error_rendering` renders them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_MAX_DETAILS = 20  # a body with thousands of bad cells gets a readable answer, not a huge one


class ServiceError(Exception):
    """Base of the errors a client can be told about; `status_code` says which."""

    status_code = 500

    def __init__(
        self,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})
        if status_code is not None:
            self.status_code = status_code


class MalformedBody(ServiceError):
    status_code = 400


class BadRequest(ServiceError):
    """A request the protocol cannot take (TF Serving's INVALID_ARGUMENT, v2's 400)."""

    status_code = 400


class InvalidInput(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class Unauthorized(ServiceError):
    status_code = 401


class TooManyRows(ServiceError):
    status_code = 413


class BodyTooLarge(ServiceError):
    status_code = 413


class RequestTimedOut(ServiceError):
    status_code = 504


class ModelNotReady(ServiceError):
    status_code = 503


def shown(name: object, limit: int = 64) -> str:
    """A client-chosen name as an error message quotes it: cut short when long, so that an
    error about a 100 KB key is not itself 100 KB."""
    text = str(name)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters)"


def _location(loc: Sequence[int | str]) -> str:
    """("body", "instances", 3, "age") -> "instances[3].age", as a client would write it."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        name = shown(part)
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out or "body"


def validation_failure(errors: Sequence[Any]) -> ServiceError:
    """Pydantic's error list -> MalformedBody (not JSON at all) or InvalidInput (with where)."""
    for e in errors:
        if e["type"] == "json_invalid":
            reason = e.get("ctx", {}).get("error", "")
            return MalformedBody(f"request body is not valid JSON: {reason}".rstrip(": "))
    details = [{"loc": _location(e["loc"]), "message": e["msg"]} for e in errors[:_MAX_DETAILS]]
    first = details[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidInput(f"{first['loc']}: {first['message']}{more}", details)
