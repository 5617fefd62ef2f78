"""The gRPC server with the clients people use: tritonclient[grpc] and KServe's
InferenceGRPCClient against the Open Inference Protocol v2, tensorflow-serving-api's stubs
against TF Serving's API; every answer equal to POST /predict's to 1e-6. And the messages,
field for field, against those clients' own descriptors.

tritonclient and kserve run in `.venv-clients` (scripts/setup.sh dev), one process per call
(tests/clients/oip_grpc.py says why); tensorflow-serving-api runs here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor, descriptor_pool

from app.grpc.protos import oip_v2_pb2, tf_serving_pb2
from tests.app.test_grpc import FEATURES, LABEL_ROWS, MATRIX, example, matrix_rows, rest
from tests.helpers.grpc_service import Served, grpc_service

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
CLIENT_SCRIPT = ROOT / "tests" / "clients" / "oip_grpc.py"


@pytest.fixture(scope="module")
def served(model_root: Path) -> Iterator[Served]:
    with grpc_service(model_root) as s:
        yield s


def run_client(*args: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    assert CLIENTS_PYTHON.exists(), "the clients' virtualenv is missing: run scripts/setup.sh dev"
    done = subprocess.run(
        [str(CLIENTS_PYTHON), str(CLIENT_SCRIPT), *args],
        input=json.dumps(request or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def label_tensors() -> list[dict[str, Any]]:
    numbers = [
        {"name": n, "datatype": "FP64", "shape": [2],
         "data": [float("nan") if r[n] is None else r[n] for r in LABEL_ROWS]}
        for n in ("age", "income")
    ]  # fmt: skip
    texts = [
        {"name": n, "datatype": "BYTES", "shape": [2], "data": [str(r[n]) for r in LABEL_ROWS]}
        for n in ("colour", "member", "rooms")
    ]
    return numbers + texts


@pytest.mark.parametrize("client", ["triton", "kserve"])
def test_oip_clients_get_the_predict_answer(client: str, served: Served, model_root: Path) -> None:
    matrix = [
        {"name": "features", "datatype": "FP32", "shape": list(MATRIX.shape),
         "data": [None if np.isnan(v) else float(v) for v in MATRIX.ravel()]}
    ]  # fmt: skip
    if client == "kserve":  # JSON has no NaN: the client sends it as a float
        matrix[0]["data"] = [float("nan") if v is None else v for v in matrix[0]["data"]]
    else:
        matrix[0]["data"] = MATRIX.ravel().tolist()
    request = {"target": served.target, "model": "diabetes", "id": "c-1", "outputs": None}
    answer = run_client(client, request=request | {"inputs": matrix})
    assert (answer["live"], answer["ready"], answer["model_ready"]) == (True, True, True)
    assert (answer["model_version"], answer["id"]) == ("1", "c-1")
    expected = rest(model_root, matrix_rows())["predictions"]
    np.testing.assert_allclose(answer["outputs"]["predictions"], expected, rtol=0, atol=1e-6)
    if client == "triton":
        assert [i["name"] for i in answer["metadata"]["inputs"]] == FEATURES

    labelled = run_client(
        client,
        request=request | {"model": "labels", "inputs": label_tensors(), "outputs": None},
    )
    expected = rest(model_root, LABEL_ROWS, "labels")
    assert labelled["outputs"]["label"] == [str(v) for v in expected["predictions"]]
    np.testing.assert_allclose(
        np.reshape(labelled["outputs"]["probabilities"], (2, -1)),
        expected["probabilities"],
        atol=1e-6,
    )


def test_tensorflow_serving_api_predict(served: Served, model_root: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    rows = matrix_rows()
    expected = rest(model_root, rows)["predictions"]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "diabetes"
    request.model_spec.signature_name = "serving_default"
    for name in FEATURES:
        column = [np.nan if r[name] is None else r[name] for r in rows]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(column, np.float32)))
    response = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["predictions"]), expected, rtol=0, atol=1e-6
    )
    assert response.model_spec.version.value == 1

    matrix = predict_pb2.PredictRequest()
    matrix.model_spec.name = "diabetes"
    matrix.inputs["x"].CopyFrom(tf.make_tensor_proto(MATRIX))
    answer = tf.make_ndarray(stub.Predict(matrix, timeout=30).outputs["predictions"])
    np.testing.assert_allclose(answer, expected, rtol=0, atol=1e-6)

    missing = predict_pb2.PredictRequest()
    missing.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(missing, timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_tensorflow_serving_api_regress_and_classify(served: Served, model_root: Path) -> None:
    from tensorflow_serving.apis import (
        classification_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )

    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    rows = matrix_rows()
    expected = rest(model_root, rows)["predictions"]
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "diabetes"
    for row in rows:  # the missing cells left out of their Example
        example(
            {k: v for k, v in row.items() if v is not None},
            regress.input.example_list.examples.add(),
        )
    values = [r.value for r in stub.Regress(regress, timeout=30).result.regressions]
    np.testing.assert_allclose(values, expected, rtol=1e-6)  # float32 in the protocol

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "labels"
    for row in LABEL_ROWS:
        example(row, classify.input.example_list.examples.add())
    labels = rest(model_root, LABEL_ROWS, "labels")
    result = stub.Classify(classify, timeout=30).result
    for got, want in zip(result.classifications, labels["probabilities"], strict=True):
        assert [c.label for c in got.classes] == [str(c) for c in labels["classes"]]
        np.testing.assert_allclose([c.score for c in got.classes], want, atol=1e-6)


def test_tensorflow_serving_api_metadata_and_status(served: Served) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "labels"
    packed = stub.GetModelMetadata(metadata, timeout=30).metadata["signature_def"]
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert set(signature.inputs) == {"age", "income", "colour", "member", "rooms"}
    assert signature.outputs["probabilities"].dtype == tf.float64.as_datatype_enum

    models = model_service_pb2_grpc.ModelServiceStub(served.channel)
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "labels"
    (version,) = models.GetModelStatus(status, timeout=30).model_version_status
    assert version.version == 1
    assert version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def fields(message: descriptor.Descriptor) -> dict[str, list[Any]]:
    """A message's fields by name: number, type, label and message or enum type, the types
    without their package (ours and the clients' packages differ)."""

    return {
        f.name: [f.number, f.type, f.is_repeated, _local(f.message_type), _local(f.enum_type)]
        for f in message.fields
    }


def _local(t: descriptor.Descriptor | descriptor.EnumDescriptor | None) -> str | None:
    """A type's name within its package: `TensorShapeProto.Dim`, `Int64Value`."""
    return None if t is None else t.full_name.removeprefix(t.file.package + ".")


def all_messages(file: descriptor.FileDescriptor) -> list[descriptor.Descriptor]:
    found: list[descriptor.Descriptor] = []
    pending = list(file.message_types_by_name.values())
    while pending:
        message = pending.pop()
        found.append(message)
        pending.extend(message.nested_types)
    return found


# Triton's InferParameter has two more choices than KServe's; neither client sends the other's.
TRITON_ONLY = {("InferParameter", "double_param"), ("InferParameter", "uint64_param")}


@pytest.mark.parametrize("client", ["triton", "kserve"])
def test_v2_messages_match_the_clients_own(client: str) -> None:
    theirs = run_client("describe", client)
    for message in all_messages(oip_v2_pb2.DESCRIPTOR):
        name = message.full_name.removeprefix("tabserve.grpc.v2.")
        assert name in theirs, f"{client} has no message {name}"
        for field, shape in fields(message).items():
            if client == "kserve" and (name, field) in TRITON_ONLY:
                assert field not in theirs[name]
                continue
            assert theirs[name].get(field) == shape, f"{name}.{field}: {shape}"


def test_tf_serving_messages_match_tensorflow_serving_apis() -> None:
    from tensorflow_serving.apis import (  # noqa: F401 (loads their descriptors)
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        input_pb2,
        model_service_pb2,
        predict_pb2,
        regression_pb2,
    )

    pool = descriptor_pool.Default()
    for message in all_messages(tf_serving_pb2.DESCRIPTOR):
        if message.GetOptions().map_entry:
            continue  # compared through the map field itself
        short = message.full_name.removeprefix("tabserve.grpc.tfserving.")
        upstream = None
        for package in ("tensorflow.serving.", "tensorflow."):
            try:
                upstream = pool.FindMessageTypeByName(package + short)
            except KeyError:
                continue
            break
        assert upstream is not None, f"no upstream message {short}"
        theirs = fields(upstream)
        for field, shape in fields(message).items():
            assert theirs.get(field) == shape, f"{short}.{field}: {shape} != {theirs.get(field)}"
    for enum in tf_serving_pb2.DESCRIPTOR.enum_types_by_name.values():
        upstream_name = {"DataType": "tensorflow.DataType", "Code": "tensorflow.error.Code"}
        theirs_enum = pool.FindEnumTypeByName(upstream_name[enum.name])
        assert {v.name: v.number for v in enum.values}.items() <= {
            v.name: v.number for v in theirs_enum.values
        }.items()
