"""The Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`, as KServe's
and Triton's clients call it): health, metadata and inference.

The answers are the REST v2 routes' (`app.http.routes.v2`), read and written by the same
codec (`app.http.codecs.v2`); only the tensors' encoding differs (`app.grpc.tensors`).
"""

from __future__ import annotations

from typing import Any

import grpc

from app.errors import NotFound, ServiceError, shown
from app.grpc.calls import Calls
from app.grpc.protos import oip_v2_pb2 as pb
from app.grpc.tensors import v2_inputs, v2_matrix, v2_outputs, v2_raw_outputs
from app.http.codecs import v2
from app.http.codecs.v2 import RequestedOutput
from app.http.responses import protocol_errors
from app.model.state import ServedModel, ServiceState

SERVICE = "inference.GRPCInferenceService"


class InferenceService:
    """The six calls of the protocol, over the service's models."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def server_live(self, _: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._ready())

    async def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        """Not ready while loading or shutting down; NOT_FOUND for a model not served."""
        if not self._ready():
            return pb.ModelReadyResponse(ready=False)
        self._served(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    async def server_metadata(self, _: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**v2.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        served = self._served(request.name, request.version)
        metadata = v2.model_metadata(served)
        response = pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"]
        )
        for kind in ("inputs", "outputs"):
            getattr(response, kind).extend(
                pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata[kind]
            )
        return response

    async def model_infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        served = self._served(request.model_name, request.model_version)
        matrix = v2_matrix(request, served.predictor.features)
        with protocol_errors():
            if matrix is not None:
                decoded = await served.inference.predict_matrix(matrix)
            else:
                decoded = await served.inference.predict_rows(v2.rows(served, v2_inputs(request)))
        tensors = v2.output_tensors(decoded)
        requested = [RequestedOutput.model_construct(name=o.name) for o in request.outputs]
        names = v2.wanted_outputs(requested or None, tensors)
        response = pb.ModelInferResponse(
            model_name=request.model_name or served.predictor.name,
            model_version=str(served.predictor.version),
            id=request.id,
        )
        # Answered in the form asked in: raw bytes for raw inputs (tritonclient), else
        # typed contents (KServe's client reads either).
        write = v2_raw_outputs if request.raw_input_contents else v2_outputs
        write(response, tensors, names)
        return response

    def _ready(self) -> bool:
        try:
            self.state.require_ready()
        except ServiceError:
            return False
        return True

    def _served(self, name: str, version: str) -> ServedModel:
        """Model `name` (the default when empty), at `version` when one is given."""
        if not version:
            return self.state.require(name or None)
        if not version.isdigit():
            raise NotFound(f"version {shown(version)!r} of model {shown(name)!r} is not served")
        return self.state.require(name or None, int(version))

    def handlers(self, calls: Calls) -> grpc.GenericRpcHandler:
        unary: list[tuple[str, Any, Any, Any, bool]] = [
            ("ServerLive", self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse, True),
            ("ServerReady", self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse, True),
            ("ModelReady", self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse, True),
            ("ServerMetadata", self.server_metadata, pb.ServerMetadataRequest,
             pb.ServerMetadataResponse, False),
            ("ModelMetadata", self.model_metadata, pb.ModelMetadataRequest,
             pb.ModelMetadataResponse, False),
            ("ModelInfer", self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse, False),
        ]  # fmt: skip
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                method: calls.unary(SERVICE, method, handler, req, resp, open_=open_)
                for method, handler, req, resp, open_ in unary
            },
        )
