"""The one layer every HTTP request passes: request id, API keys, body limit, timeout, metrics
and the access log line.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would wrap every
request and response in extra tasks and streams. Everything here runs for every request, so
it is kept to a few microseconds: no per-request timer (one sweep a tick finds late requests),
no gauge updates (in-flight is counted when scraped), no logging records (see AccessLog).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyTooLarge, RequestTimedOut, ServiceError
from app.http.error_rendering import as_service_error, error_response
from app.ops.api_keys import ApiKeys, is_open
from app.ops.logs import AccessLog
from app.ops.metrics import Metrics
from app.ops.request_context import RequestInfo, current

# A client's request id is echoed in a header and logged: accept only what cannot break either.
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(slots=True)
class _Flight:
    """A request being answered, as the timeout sweep sees it."""

    task: asyncio.Task[Any]
    deadline: float
    answering: bool = False
    timed_out: bool = False


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
        self.access_log = AccessLog()
        self.endpoints: dict[tuple[str, str], ASGIApp] = {}
        """Plain ASGI endpoints by (method, path), answered here instead of by `app`: the
        service's `ServiceApp` sends their requests straight to this layer (see there)."""
        self._flights: dict[int, _Flight] = {}
        self._sweeping: asyncio.AbstractEventLoop | None = None
        # Late requests are found within a tenth of the timeout (at most a second) of it.
        self._tick = min(1.0, timeout / 10)
        metrics.in_flight.set_function(lambda: len(self._flights))

    def installed(self, app: ASGIApp) -> ASGIApp:
        """This instance, in the place of a middleware class in Starlette's stack: the stack
        is built on the app's first request, and `app` is what it puts below."""
        self.app = app
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            if scope["type"] == "lifespan":  # the app has shut down: no line may stay behind
                self.access_log.flush()
            return
        started = time.perf_counter()
        request_id, length, chunked = _read_headers(scope["headers"])
        info = RequestInfo(request_id.decode())
        token = current.set(info)
        flight = self._take_off()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                flight.answering = True  # from here on the answer is let finish
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            if self.api_keys.enabled and not is_open(scope["path"]):
                self.api_keys.check(scope["headers"])
            if length is not None and length > self.max_body_bytes:
                raise self._too_large()
            if chunked:
                receive = await self._buffer_body(receive)
            endpoint = self.endpoints.get((scope["method"], scope["path"]), self.app)
            await endpoint(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not flight.timed_out:
                raise  # the client or the server went away: not ours to answer
            flight.task.uncancel()
            timed_out = RequestTimedOut(
                f"no answer within {self.timeout:g} s (REQUEST_TIMEOUT_SECONDS)"
            )
            await self._send_error(timed_out, scope, send_with_id)
        except Exception as exc:
            # Errors a route raises are rendered by the app's handler; what reaches here was
            # raised before routing (keys, limits), by one of `endpoints`, or escaped every
            # handler (a bug, logged): rendered alike, by the one error path.
            if status != 0:
                raise
            await self._send_error(as_service_error(exc), scope, send_with_id)
        finally:
            del self._flights[id(flight)]
            current.reset(token)
            self._record(scope, info, status or 500, time.perf_counter() - started)

    def _take_off(self) -> _Flight:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 (an ASGI request always runs in a task)
        flight = _Flight(task, loop.time() + self.timeout)
        self._flights[id(flight)] = flight
        if self._sweeping is not loop:
            self._sweeping = loop
            loop.call_later(self._tick, self._sweep, loop)
        return flight

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the requests past their deadline that have not begun answering; runs every
        tick while any request is in flight."""
        now = loop.time()
        for flight in list(self._flights.values()):
            if now >= flight.deadline and not (flight.answering or flight.timed_out):
                flight.timed_out = True
                flight.task.cancel()
        if self._flights:
            loop.call_later(self._tick, self._sweep, loop)
        else:
            self._sweeping = None

    async def _send_error(self, error: ServiceError, scope: Scope, send: Send) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await error_response(error)(scope, no_body, send)

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"request body is larger than {self.max_body_bytes} bytes (MAX_BODY_BYTES)"
        )

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
        if self.access_log.enabled():
            client = scope.get("client")
            self.access_log.write(
                f"{method} {template} {status}",
                {
                    "request_id": info.request_id,
                    "method": scope["method"],
                    "route": template,
                    "path": scope["path"][:256],
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "rows": info.rows,
                    "model_name": info.model_name,
                    "model_version": info.model_version,
                    "client": client[0] if client else None,
                },
            )


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
