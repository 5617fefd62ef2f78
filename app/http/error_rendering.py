"""The one place that renders every error, whoever raised it, in one JSON shape."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.errors import ServiceError, validation_failure

logger = logging.getLogger(__name__)


def error_body(message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The single error shape: `{"error": message}` plus `details` (each with a `loc`)."""
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = list(details)
    return body


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
