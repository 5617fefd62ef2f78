"""The gRPC server: in the HTTP server's process and on its event loop, over the same models.

It shares everything with HTTP (the loaded models, their batchers, the reloader, the API
keys, the metrics), so a reload or a drain covers both and readiness is one truth. It listens
on GRPC_PORT; 0 turns it off.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from app.grpc.calls import Calls
from app.grpc.health import Health
from app.grpc.tfserving_service import MODEL_SERVICE, PREDICTION_SERVICE, PredictionService
from app.grpc.v2_service import SERVICE as V2_SERVICE
from app.grpc.v2_service import InferenceService
from app.model.state import ServiceState
from app.ops import workers
from app.ops.api_keys import ApiKeys
from app.ops.logs import AccessLog
from app.ops.metrics import Metrics
from app.settings import Settings

logger = logging.getLogger(__name__)


class GrpcPortError(RuntimeError):
    """GRPC_PORT cannot be listened on."""


class GrpcServer:
    def __init__(
        self,
        settings: Settings,
        state: ServiceState,
        metrics: Metrics,
        api_keys: ApiKeys,
    ) -> None:
        self.settings = settings
        self.port = settings.grpc_port
        self._access_log = AccessLog()
        self._calls = Calls(metrics, api_keys, settings.request_timeout_seconds, self._access_log)
        self._state = state
        # Workers of one service (WORKERS above 1) share the port; alone, one in use is an error.
        self._shared_port = workers.supervisor_pid() is not None
        self._server: grpc.aio.Server | None = None
        self._stopping: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen on GRPC_PORT (GrpcPortError when it cannot) and start answering."""
        settings = self.settings
        server = grpc.aio.server(
            options=[
                # The HTTP body limit, for a gRPC message; answers are not limited.
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 1 if self._shared_port else 0),
            ]
        )
        v2 = InferenceService(self._state)
        tfserving = PredictionService(self._state)
        health = Health(self._state, frozenset({V2_SERVICE, PREDICTION_SERVICE, MODEL_SERVICE}))
        calls = self._calls
        server.add_generic_rpc_handlers(
            (v2.handlers(calls), *tfserving.handlers(calls), health.handlers(calls))
        )
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        try:
            self.port = server.add_insecure_port(f"{host}:{settings.grpc_port}")
        except RuntimeError as exc:
            where = f"GRPC_PORT {settings.grpc_port} on {settings.host}"
            raise GrpcPortError(f"{where}: {exc}") from None
        await server.start()
        self._server = server
        logger.info("gRPC listening on %s:%d", settings.host, self.port)

    def drain(self) -> None:
        """Stop taking calls; those in flight get DRAIN_TIMEOUT_SECONDS to finish. Idempotent."""
        if self._server is not None and self._stopping is None:
            grace = self.settings.drain_timeout_seconds
            self._stopping = asyncio.ensure_future(self._server.stop(grace))

    async def stop(self) -> None:
        """`drain`, and wait for it."""
        self.drain()
        if self._stopping is not None:
            await self._stopping
        self._access_log.flush()
