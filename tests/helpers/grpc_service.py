"""The service with its gRPC server on real loopback ports, and calls to it with the project's
own message classes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from app.http.factory import create_app
from tests.helpers.live import free_port, live_server
from tests.helpers.service import settings_for

V2 = "inference.GRPCInferenceService"
TFS = "tensorflow.serving.PredictionService"
MODELS = "tensorflow.serving.ModelService"
HEALTH = "grpc.health.v1.Health"


@dataclass
class Served:
    http: str
    """host:port of HTTP"""
    target: str
    """host:port of gRPC"""
    channel: grpc.Channel

    def call(
        self,
        service: str,
        method: str,
        request: Any,
        response_type: Any,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> Any:
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return stub(request, metadata=tuple(metadata) or None, timeout=30)

    def failure(
        self,
        service: str,
        method: str,
        request: Any,
        response_type: Any,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> grpc.RpcError:
        """The error the call ends with (the test fails if it succeeds)."""
        try:
            self.call(service, method, request, response_type, metadata)
        except grpc.RpcError as error:
            return error
        raise AssertionError(f"{method} succeeded")


@contextmanager
def grpc_service(model_root: Path, name: str = "diabetes", **overrides: object) -> Iterator[Served]:
    """The app serving `model_root` (default model `name`) over HTTP and gRPC."""
    port = free_port()
    settings = settings_for(model_root, name, grpc_port=port, host="127.0.0.1", **overrides)
    with (
        live_server(create_app(settings)) as http,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Served(http, f"127.0.0.1:{port}", channel)
