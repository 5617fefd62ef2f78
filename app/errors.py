"""Domain errors that carry their HTTP status, and the one place that renders every error."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)

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


def error_body(message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The single error shape: `{"error": message}` plus `details` (each with a `loc`)."""
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = list(details)
    return body


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


def as_service_error(exc: Exception) -> ServiceError:
    """Any exception -> the ServiceError a client is shown; unexpected ones are logged."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, RequestValidationError):
        return validation_failure(exc.errors())
    if isinstance(exc, HTTPException):
        return ServiceError(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
    logger.error("unhandled error", exc_info=exc)
    return ServiceError("internal server error")


def error_response(error: ServiceError) -> JSONResponse:
    """Every error leaves the service in this one JSON shape, whoever raised it."""
    return JSONResponse(
        error_body(error.message, error.details),
        status_code=error.status_code,
        headers=error.headers,
    )


async def render_error(_: Request, exc: Exception) -> JSONResponse:
    """The one exception handler, for errors raised while a route runs."""
    return error_response(as_service_error(exc))


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in (ServiceError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(exc_type, render_error)
