"""The one layer every HTTP request passes: request id, API keys, body limit, timeout, metrics
and the access log line.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would wrap every
request and response in extra tasks and streams; this costs a few microseconds a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api_keys import ApiKeys, is_open
from app.errors import BodyTooLarge, RequestTimedOut, ServiceError, as_service_error, error_response
from app.logs import access_logger
from app.metrics import Metrics
from app.request_context import RequestInfo, current

# A client's request id is echoed in a header and logged: accept only what cannot break either.
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        api_keys: ApiKeys,
        max_body_bytes: int,
        timeout: float,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, length, chunked = _read_headers(scope["headers"])
        info = RequestInfo(request_id.decode())
        token = current.set(info)
        status = 0
        deadline: asyncio.Timeout | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
                if deadline is not None:
                    deadline.reschedule(None)  # answering has begun: let it finish
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if self.api_keys.enabled and not is_open(scope["path"]):
                self.api_keys.check(scope["headers"])
            if length is not None and length > self.max_body_bytes:
                raise self._too_large()
            if chunked:
                receive = await self._buffer_body(receive)
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive, send_with_id)
        except TimeoutError:
            deadline = None  # expired: it can no longer be moved
            if status == 0:
                timed_out = RequestTimedOut(self._timeout_message())
                await self._send_error(timed_out, scope, send_with_id)
        except Exception as exc:
            # Errors a route raises are rendered by the app's handler; what reaches here was
            # raised before routing (keys, limits) or escaped every handler (a bug, logged).
            if status != 0:
                raise
            await self._send_error(as_service_error(exc), scope, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            current.reset(token)
            self._record(scope, info, status or 500, time.perf_counter() - started)

    async def _send_error(self, error: ServiceError, scope: Scope, send: Send) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await error_response(error)(scope, no_body, send)

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"request body is larger than {self.max_body_bytes} bytes (MAX_BODY_BYTES)"
        )

    def _timeout_message(self) -> str:
        return f"no answer within {self.timeout:g} s (REQUEST_TIMEOUT_SECONDS)"

    async def _buffer_body(self, receive: Receive) -> Receive:
        """Read a body sent without Content-Length, refusing it once it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see the disconnect
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                raise self._too_large()
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        return replayed

    def _record(self, scope: Scope, info: RequestInfo, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        self.metrics.observe_request(template, method, status, seconds)
        if info.rows and info.model_name is not None:
            self.metrics.observe_rows(info.model_name, info.rows)
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                "%s %s %d",
                method,
                template,
                status,
                extra=_access_fields(scope, info, template, status, seconds),
            )


def _access_fields(
    scope: Scope, info: RequestInfo, route: str, status: int, seconds: float
) -> dict[str, Any]:
    client = scope.get("client")
    return {
        "request_id": info.request_id,
        "method": scope["method"],
        "route": route,
        "path": scope["path"][:256],
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
        "rows": info.rows,
        "model_name": info.model_name,
        "model_version": info.model_version,
        "client": client[0] if client else None,
    }


def _read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int | None, bool]:
    """(request id, Content-Length, chunked) from the raw headers, in one pass."""
    request_id = None
    length = None
    chunked = False
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            request_id = value
        elif name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return request_id or os.urandom(16).hex().encode(), length, chunked
