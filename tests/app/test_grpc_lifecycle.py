"""gRPC shares the HTTP server's life: a reload serves the new version over both, a SIGTERM
drains both, readiness is one truth, and a port in use stops the start-up."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from app.grpc.health import Health
from app.grpc.protos import oip_v2_pb2 as v2
from app.model.state import ServiceState
from tests.app.test_reloads import POLL, publish, wait_for
from tests.helpers.grpc_service import V2, grpc_service
from tests.helpers.live import app_process, free_port

ROW = [0.01, -0.04, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]


def matrix_request(model: str, rows: int = 1) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=model)
    request.inputs.add(name="features", datatype="FP32", shape=[rows, 10])
    request.raw_input_contents.append(
        np.tile(np.asarray(ROW, dtype=np.float32), rows).astype("<f4").tobytes()
    )
    return request


def test_a_reload_serves_the_new_version_over_grpc(tmp_path: Path, version_dir: Path) -> None:
    publish(version_dir, tmp_path, 1)
    with grpc_service(tmp_path, "m", model_poll_seconds=POLL) as s:

        def version() -> str:
            answer = s.call(V2, "ModelInfer", matrix_request("m"), v2.ModelInferResponse)
            return str(answer.model_version)

        assert version() == "1"
        publish(version_dir, tmp_path, 2)
        wait_for(lambda: version() == "2", "version 2 over gRPC")
        metadata = s.call(V2, "ModelMetadata", v2.ModelMetadataRequest(name="m"),
                          v2.ModelMetadataResponse)  # fmt: skip
        assert list(metadata.versions) == ["2"]


def test_sigterm_lets_grpc_calls_in_flight_finish_then_exits_0(model_root: Path) -> None:
    port = free_port()
    # Rows wait up to 1.5 s for company in the SavedModel's batcher: the call is still in
    # flight when the signal comes.
    with app_process(
        model_root,
        GRPC_PORT=str(port),
        MODEL_RUNTIME="savedmodel",
        BATCH_TIMEOUT_MICROS="1500000",
        DRAIN_TIMEOUT_SECONDS="5",
    ) as (process, _):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            infer = channel.unary_unary(
                f"/{V2}/ModelInfer",
                request_serializer=v2.ModelInferRequest.SerializeToString,
                response_deserializer=v2.ModelInferResponse.FromString,
            )
            in_flight = infer.future(matrix_request("diabetes"), timeout=20)
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            answer = in_flight.result()
            assert answer.model_version == "1"
            assert len(answer.outputs) == 1
            with pytest.raises(grpc.RpcError) as refused:  # no new call is taken any more
                infer(matrix_request("diabetes"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert process.wait(timeout=20) == 0


def test_health_is_readiness(model_root: Path) -> None:
    state = ServiceState(default="diabetes")
    health = Health(state, frozenset({V2}))
    assert health.status("") == health_pb2.HealthCheckResponse.NOT_SERVING  # nothing loaded
    assert health.status("liveness") == health_pb2.HealthCheckResponse.SERVING
    assert health.status("other") == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    with grpc_service(model_root) as s:
        stub = s.channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        first = next(iter(stub(health_pb2.HealthCheckRequest(), timeout=10)))
        assert first.status == health_pb2.HealthCheckResponse.SERVING


def test_a_grpc_port_in_use_stops_the_start_up(model_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match=f"GRPC_PORT {port}"):  # noqa: SIM117
            with app_process(model_root, GRPC_PORT=str(port)):
                pass
