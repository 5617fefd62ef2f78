"""TF Serving's gRPC API, as `tensorflow-serving-api` clients call it:
`tensorflow.serving.PredictionService` (Predict, Classify, Regress, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus).

Rows are validated by the REST routes' codec (`app.http.codecs.tfserving`), so a bad cell
gets the same message; tensors are read and written in `app.grpc.tensors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np

from app.bundle import Decoded, NumericFeature
from app.errors import BadRequest, NotFound, shown
from app.grpc.calls import Calls
from app.grpc.protos import tf_serving_pb2 as pb
from app.grpc.tensors import (
    example_cells,
    output_arrays,
    tf_array,
    tf_numbers_from_text,
    tf_shape,
    tf_tensor,
    tf_values,
)
from app.http.codecs import tfserving
from app.http.codecs.tfserving import ExamplesBody, PredictBody
from app.http.responses import protocol_errors
from app.model.state import ServedModel, ServiceState

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


class PredictionService:
    """Predict, Classify, Regress, GetModelMetadata and GetModelStatus over the models."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def predict(self, request: pb.PredictRequest) -> pb.PredictResponse:
        """Inputs named after the features ([N] or [N, 1] each), or one [N, F] number tensor
        in the bundle's feature order, under any other name."""
        served = self._served(request.model_spec)
        outputs = output_arrays(await self._predict_inputs(served, request.inputs))
        wanted = list(request.output_filter) or list(outputs)
        if unknown := [n for n in wanted if n not in outputs]:
            raise BadRequest(
                f"unknown output_filter: {', '.join(map(shown, unknown))}; "
                f"outputs: {', '.join(outputs)}"
            )
        response = pb.PredictResponse(model_spec=_spec(served))
        for name in wanted:
            response.outputs[name].CopyFrom(tf_tensor(*outputs[name]))
        return response

    async def classify(self, request: pb.ClassificationRequest) -> pb.ClassificationResponse:
        served = self._served(request.model_spec)
        classes = served.predictor.metadata.classes
        if classes is None:
            raise BadRequest(
                f"model {served.predictor.name!r} is a regression model: use Regress or Predict"
            )
        decoded = await _predict(served, self._example_rows(served, request.input), "examples")
        response = pb.ClassificationResponse(model_spec=_spec(served))
        for row in tfserving.classify_results(decoded, classes):
            response.result.classifications.add().classes.extend(
                pb.Class(label=label, score=score) for label, score in row
            )
        return response

    async def regress(self, request: pb.RegressionRequest) -> pb.RegressionResponse:
        served = self._served(request.model_spec)
        if served.predictor.metadata.task != "regression":
            raise BadRequest(
                f"model {served.predictor.name!r} is a classifier: use Classify or Predict"
            )
        decoded = await _predict(served, self._example_rows(served, request.input), "examples")
        response = pb.RegressionResponse(model_spec=_spec(served))
        response.result.regressions.extend(pb.Regression(value=v) for v in decoded.values)
        return response

    async def get_model_metadata(
        self, request: pb.GetModelMetadataRequest
    ) -> pb.GetModelMetadataResponse:
        """The `serving_default` signature, packed as TF Serving packs it (SignatureDefMap in
        an Any, under `signature_def`), the only metadata field there is."""
        served = self._served(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise BadRequest("metadata_field must name at least one field: signature_def")
        if unknown := [f for f in fields if f != "signature_def"]:
            raise BadRequest(
                f"metadata_field {shown(unknown[0])!r} is not supported; fields: signature_def"
            )
        signature = pb.SignatureDef(method_name=tfserving.METHOD_NAME)
        for kind in ("inputs", "outputs"):
            for name, (dtype, width) in tfserving.signature_tensors(served.predictor, kind).items():
                getattr(signature, kind)[name].CopyFrom(
                    pb.TensorInfo(
                        name=name,
                        dtype=dtype,
                        tensor_shape=tf_shape([-1] if width is None else [-1, width]),
                    )
                )
        signatures = pb.SignatureDefMap()
        signatures.signature_def[tfserving.SIGNATURE].CopyFrom(signature)
        response = pb.GetModelMetadataResponse(model_spec=_spec(served))
        packed = response.metadata["signature_def"]
        packed.type_url = SIGNATURE_DEF_MAP_URL
        packed.value = signatures.SerializeToString()
        return response

    async def get_model_status(
        self, request: pb.GetModelStatusRequest
    ) -> pb.GetModelStatusResponse:
        """The served version of the model, AVAILABLE."""
        served = self._served(request.model_spec)
        return pb.GetModelStatusResponse(
            model_version_status=[
                pb.ModelVersionStatus(
                    version=served.predictor.version,
                    state=pb.ModelVersionStatus.AVAILABLE,
                    status=pb.StatusProto(error_code=pb.OK, error_message=""),
                )
            ]
        )

    def _served(self, spec: pb.ModelSpec) -> ServedModel:
        """The model `spec` names (the default when the name is empty), at its version when
        one is given. Version labels are not kept: one is NOT_FOUND."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            raise NotFound(
                f"version label {shown(spec.version_label)!r} of model {shown(spec.name)!r} "
                "is not served: versions are addressed by number"
            )
        version = spec.version.value if choice == "version" else None
        return self.state.require(spec.name or None, version)

    async def _predict_inputs(self, served: ServedModel, inputs: Any) -> Decoded:
        features = served.predictor.features
        if len(inputs) == 1 and next(iter(inputs)) not in features:
            name, tensor = next(iter(inputs.items()))
            where = f"input {shown(name)!r}"
            if tensor.dtype in (pb.DT_STRING, pb.DT_BOOL):
                shape = [d.size for d in tensor.tensor_shape.dim]
            else:
                shape, matrix = tf_array(where, tensor)
            if (
                len(shape) != 2
                or shape[1] != len(features)
                or tensor.dtype in (pb.DT_STRING, pb.DT_BOOL)
            ):
                raise BadRequest(
                    f"{where}: one tensor not named after a feature must be numbers of shape "
                    f"[N, {len(features)}] (features: {', '.join(features)}), not {shape}"
                )
            return await _predict(served, matrix.astype(np.float64), "instances")
        numeric = _numeric(served)
        columns: dict[str, list[Any]] = {}
        for name, tensor in inputs.items():
            where = f"input {shown(name)!r}"
            shape, values = tf_values(where, tensor)
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise BadRequest(f"{where}: shape must be [N] or [N, 1], not {shape}")
            if name in numeric and tensor.dtype == pb.DT_STRING:
                values = tf_numbers_from_text(where, values)
            columns[name] = values
        body = PredictBody.model_construct(inputs=columns, instances=None)
        key, rows = tfserving.predict_rows(served, body)
        return await _predict(served, rows, key)

    def _example_rows(self, served: ServedModel, given: pb.Input) -> list[Any]:
        """The examples as rows, `context` merged into each. A feature an Example leaves out
        is missing, as one with no value is: a tf.Example has no other way to say so."""
        kind = given.WhichOneof("kind")
        if kind is None:
            raise BadRequest("input must hold example_list or example_list_with_context")
        listed = getattr(given, kind)
        absent = dict.fromkeys(served.predictor.features)
        if kind == "example_list_with_context" and listed.HasField("context"):
            absent |= example_cells("context", listed.context)
        numeric = _numeric(served)
        examples = []
        for i, example in enumerate(listed.examples):
            cells = absent | example_cells(f"examples[{i}]", example)
            for name in numeric.intersection(cells):
                if isinstance(cells[name], str):
                    cells[name] = tf_numbers_from_text(f"examples[{i}].{name}", [cells[name]])[0]
            examples.append(cells)
        body = ExamplesBody.model_construct(examples=examples, context=None)
        return tfserving.example_rows(served, body)

    def handlers(self, calls: Calls) -> Sequence[grpc.GenericRpcHandler]:
        predictions: list[tuple[str, Any, Any, Any]] = [
            ("Predict", self.predict, pb.PredictRequest, pb.PredictResponse),
            ("Classify", self.classify, pb.ClassificationRequest, pb.ClassificationResponse),
            ("Regress", self.regress, pb.RegressionRequest, pb.RegressionResponse),
            ("GetModelMetadata", self.get_model_metadata, pb.GetModelMetadataRequest,
             pb.GetModelMetadataResponse),
        ]  # fmt: skip
        status = calls.unary(
            MODEL_SERVICE,
            "GetModelStatus",
            self.get_model_status,
            pb.GetModelStatusRequest,
            pb.GetModelStatusResponse,
        )
        return [
            grpc.method_handlers_generic_handler(
                PREDICTION_SERVICE,
                {
                    method: calls.unary(PREDICTION_SERVICE, method, handler, req, resp)
                    for method, handler, req, resp in predictions
                },
            ),
            grpc.method_handlers_generic_handler(MODEL_SERVICE, {"GetModelStatus": status}),
        ]


def _spec(served: ServedModel) -> pb.ModelSpec:
    spec = pb.ModelSpec(name=served.predictor.name, signature_name=tfserving.SIGNATURE)
    spec.version.value = served.predictor.version
    return spec


def _numeric(served: ServedModel) -> set[str]:
    return {f.name for f in served.predictor.stats.features if isinstance(f, NumericFeature)}


async def _predict(served: ServedModel, rows: list[Any] | np.ndarray, key: str) -> Decoded:
    """Rows, or a number matrix in feature order; a value the model cannot take is the
    protocol's INVALID_ARGUMENT, named after the request's field."""
    with protocol_errors(key):
        if isinstance(rows, np.ndarray):
            return await served.inference.predict_matrix(rows)
        return await served.inference.predict_rows(rows)
