"""The standard `grpc.health.v1.Health` service, for Kubernetes' gRPC probes and grpc clients.

It answers from the same state as `/readyz`: SERVING once every model is loaded, NOT_SERVING
before that and from the moment a SIGTERM starts the drain. The empty service name and the
names of the services this server offers all mean the whole server; `liveness` is SERVING
while the process answers at all, as `/healthz` is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from app.errors import NotFound, ServiceError, shown
from app.grpc.calls import Calls
from app.model.state import ServiceState

SERVICE = "grpc.health.v1.Health"
LIVENESS = "liveness"
WATCH_SECONDS = 1.0
"""How often a Watch stream looks at the state for a change to send."""

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Health:
    def __init__(self, state: ServiceState, services: frozenset[str]) -> None:
        self.state = state
        self.services = services | {"", SERVICE}

    def status(self, service: str) -> int:
        if service == LIVENESS:
            return _SERVING
        if service not in self.services:
            return _UNKNOWN
        try:
            self.state.require_ready()
        except ServiceError:
            return _NOT_SERVING
        return _SERVING

    async def check(self, request: health_pb2.HealthCheckRequest) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status == _UNKNOWN:
            raise NotFound(f"unknown service {shown(request.service)!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def watch(
        self, request: health_pb2.HealthCheckRequest, _: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change; the stream ends once the server drains, so that
        a watcher never holds the drain up."""
        last = None
        while True:
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self.state.shutting_down:
                return
            await asyncio.sleep(WATCH_SECONDS)

    def handlers(self, calls: Calls) -> grpc.GenericRpcHandler:
        request, response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Check": calls.unary(SERVICE, "Check", self.check, request, response, open_=True),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.watch,
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                ),
            },
        )
