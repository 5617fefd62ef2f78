"""What every gRPC call passes, as every HTTP request passes ServiceMiddleware: request id,
API key, timeout, the status code an error maps to, metrics and the access line.

Errors are the service's own (`app.errors`), rendered once here as a gRPC status with the
message the REST routes give.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from app.errors import RequestTimedOut, ServiceError
from app.http.error_rendering import as_service_error
from app.ops.api_keys import ApiKeys
from app.ops.logs import AccessLog
from app.ops.metrics import Metrics
from app.ops.request_context import RequestInfo, current

Handler = Callable[[Any], Awaitable[Any]]

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(error: ServiceError) -> grpc.StatusCode:
    """The gRPC status of an error the REST routes answer with `error.status_code`."""
    return _CODES.get(error.status_code, grpc.StatusCode.INTERNAL)


class Calls:
    """Wraps the handlers of every unary RPC with the service's operations."""

    def __init__(
        self, metrics: Metrics, api_keys: ApiKeys, timeout: float, access_log: AccessLog
    ) -> None:
        self.metrics = metrics
        self.api_keys = api_keys
        self.timeout = timeout
        self.access_log = access_log

    def unary(
        self,
        service: str,
        method: str,
        handler: Handler,
        request_type: Any,
        response_type: Any,
        *,
        open_: bool = False,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The method handler of `/service/method`: `handler(request) -> response`, raising
        ServiceError for the client's mistakes. `open_` methods (probes) need no API key."""
        name = f"/{service}/{method}"

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            request_id, headers = _read_metadata(context.invocation_metadata() or ())
            info = RequestInfo(request_id)
            token = current.set(info)
            code = grpc.StatusCode.OK
            context.set_trailing_metadata((("x-request-id", request_id),))
            try:
                if self.api_keys.enabled and not open_:
                    self.api_keys.check(headers)
                try:
                    async with asyncio.timeout(self.timeout):
                        return await handler(request)
                except TimeoutError:
                    raise RequestTimedOut(
                        f"no answer within {self.timeout:g} s (REQUEST_TIMEOUT_SECONDS)"
                    ) from None
            except asyncio.CancelledError:  # the client went away or its deadline passed
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                error = as_service_error(exc)
                code = status_code(error)
                await context.abort(code, error.message)
            finally:
                current.reset(token)
                self._record(name, code, info, context, time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )

    def _record(
        self,
        method: str,
        code: grpc.StatusCode,
        info: RequestInfo,
        context: grpc.aio.ServicerContext[Any, Any],
        seconds: float,
    ) -> None:
        self.metrics.observe_grpc(method, code.name, seconds)
        if info.rows and info.model_name is not None:
            self.metrics.observe_rows(info.model_name, info.rows)
        if self.access_log.enabled():
            self.access_log.write(
                f"GRPC {method} {code.name}",
                {
                    "request_id": info.request_id,
                    "method": "GRPC",
                    "route": method,
                    "path": method,
                    "grpc_code": code.name,
                    "latency_ms": round(seconds * 1000, 3),
                    "rows": info.rows,
                    "model_name": info.model_name,
                    "model_version": info.model_version,
                    "client": context.peer(),  # asked only for the line: it is not free
                },
            )


def _read_metadata(
    metadata: Any,
) -> tuple[str, list[tuple[bytes, bytes]]]:
    """(request id, the headers an API key may come in) from the call's metadata."""
    request_id = None
    headers: list[tuple[bytes, bytes]] = []
    for key, value in metadata:
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            request_id = value
        elif key in ("authorization", "x-api-key") and isinstance(value, str):
            headers.append((key.encode(), value.encode()))
    return request_id or os.urandom(16).hex(), headers
