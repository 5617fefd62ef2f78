"""The gRPC server, called with the project's own messages: the Open Inference Protocol v2,
TF Serving's API and health, answering as POST /predict does, and operated as HTTP is (keys,
request ids, errors, limits, metrics, the access line, readiness)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx2 as httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from app.grpc.protos import oip_v2_pb2 as v2
from app.grpc.protos import tf_serving_pb2 as tfs
from tests.helpers.grpc_service import HEALTH, MODELS, TFS, V2, Served, grpc_service
from tests.helpers.service import serve

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
# float32 values, so that every encoding carries exactly the numbers the REST body does
MATRIX = np.array(
    [
        [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018],
        [-0.002, -0.045, -0.051, -0.026, -0.009, -0.019, 0.074, -0.039, -0.068, -0.092],
        [0.085, 0.051, 0.044, -0.006, np.nan, -0.034, -0.032, -0.003, 0.003, -0.026],
    ],
    dtype=np.float32,
)
LABEL_ROWS: list[dict[str, Any]] = [
    {"age": 35.0, "income": 72000.0, "colour": "red", "member": "true", "rooms": 4},
    {"age": 61.0, "income": None, "colour": "turquoise", "member": "false", "rooms": 2},
]


def matrix_rows() -> list[dict[str, Any]]:
    """MATRIX as JSON rows: NaN is missing (null)."""
    return [
        {f: None if np.isnan(v) else float(v) for f, v in zip(FEATURES, row, strict=True)}
        for row in MATRIX
    ]


def rest(model_root: Path, rows: list[dict[str, Any]], name: str = "diabetes") -> dict[str, Any]:
    """POST /predict's answer, from a service whose default model is `name`."""
    with serve(model_root, name) as c:
        response = c.post("/predict", json={"instances": rows})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def served(model_root: Path) -> Iterator[Served]:
    with grpc_service(model_root, max_rows=100) as s:
        yield s


def infer(served: Served, request: v2.ModelInferRequest) -> v2.ModelInferResponse:
    answer: v2.ModelInferResponse = served.call(V2, "ModelInfer", request, v2.ModelInferResponse)
    return answer


def v2_output(response: v2.ModelInferResponse, name: str) -> list[Any]:
    """An output's values, from `contents` or from `raw_output_contents`."""
    for i, out in enumerate(response.outputs):
        if out.name != name:
            continue
        if response.raw_output_contents:
            raw = response.raw_output_contents[i]
            if out.datatype == "BYTES":
                values, at = [], 0
                while at < len(raw):
                    n = int.from_bytes(raw[at : at + 4], "little")
                    values.append(raw[at + 4 : at + 4 + n].decode())
                    at += 4 + n
                return values
            result: list[Any] = np.frombuffer(raw, dtype="<f8").tolist()
            return result
        if out.datatype == "BYTES":
            return [b.decode() for b in out.contents.bytes_contents]
        return list(out.contents.fp64_contents)
    raise AssertionError(f"no output {name}")


def test_v2_health_and_metadata(served: Served) -> None:
    assert served.call(V2, "ServerLive", v2.ServerLiveRequest(), v2.ServerLiveResponse).live
    assert served.call(V2, "ServerReady", v2.ServerReadyRequest(), v2.ServerReadyResponse).ready
    ready = served.call(
        V2, "ModelReady", v2.ModelReadyRequest(name="diabetes", version="1"), v2.ModelReadyResponse
    )
    assert ready.ready
    server = served.call(
        V2, "ServerMetadata", v2.ServerMetadataRequest(), v2.ServerMetadataResponse
    )
    assert server.name == "tabserve"
    meta = served.call(
        V2, "ModelMetadata", v2.ModelMetadataRequest(name="labels"), v2.ModelMetadataResponse
    )
    rest_meta = httpx.get(f"http://{served.http}/v2/models/labels").json()
    assert meta.name == rest_meta["name"] == "labels"
    assert list(meta.versions) == rest_meta["versions"]
    for kind in ("inputs", "outputs"):
        given = [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
            for t in getattr(meta, kind)
        ]
        assert given == rest_meta[kind]


def test_v2_matrix_in_contents_equals_predict(served: Served, model_root: Path) -> None:
    request = v2.ModelInferRequest(model_name="diabetes", id="req-9")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=list(MATRIX.shape))
    tensor.contents.fp32_contents.extend(MATRIX.ravel().tolist())
    response = infer(served, request)
    expected = rest(model_root, matrix_rows())["predictions"]
    np.testing.assert_allclose(v2_output(response, "predictions"), expected, rtol=0, atol=1e-6)
    assert (response.model_name, response.model_version, response.id) == ("diabetes", "1", "req-9")
    assert not response.raw_output_contents  # answered in the form asked in


def test_v2_raw_tensor_per_feature_and_bytes_categories(served: Served, model_root: Path) -> None:
    request = v2.ModelInferRequest(model_name="labels")
    for name in ("age", "income"):
        values = [np.nan if r[name] is None else r[name] for r in LABEL_ROWS]
        request.inputs.add(name=name, datatype="FP64", shape=[2])
        request.raw_input_contents.append(np.asarray(values, dtype="<f8").tobytes())
    for name in ("colour", "member", "rooms"):
        texts = [str(r[name]).encode() for r in LABEL_ROWS]
        request.inputs.add(name=name, datatype="BYTES", shape=[2])
        request.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in texts))
    response = infer(served, request)
    expected = rest(model_root, LABEL_ROWS, "labels")
    assert v2_output(response, "label") == [str(label) for label in expected["predictions"]]
    probabilities = np.reshape(v2_output(response, "probabilities"), (2, -1))
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-6)
    assert len(response.raw_output_contents) == 2


def test_v2_requested_outputs_only(served: Served) -> None:
    request = v2.ModelInferRequest(model_name="labels")
    for name in ("age", "income", "colour", "member", "rooms"):
        t = request.inputs.add(name=name, datatype="BYTES", shape=[1])
        t.contents.bytes_contents.append(str(LABEL_ROWS[0][name]).encode())
    request.outputs.add(name="probabilities")
    assert [o.name for o in infer(served, request).outputs] == ["probabilities"]


def v2_matrix(
    shape: list[int], values: list[float], datatype: str = "FP32"
) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="diabetes")
    tensor = request.inputs.add(name="features", datatype=datatype, shape=shape)
    tensor.contents.fp32_contents.extend(values)
    return request


@pytest.mark.parametrize(
    ("inputs", "code", "message"),
    [
        ({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32",
                      "data": [0.0] * 3}]},
         grpc.StatusCode.INVALID_ARGUMENT,
         "input 'features': shape must be [N, 10] (features: age, sex, bmi, bp, s1, s2, s3, s4, "
         "s5, s6), not [1, 3]"),
        ({"inputs": [{"name": "features", "shape": [2, 10], "datatype": "FP32",
                      "data": [0.0] * 10}]},
         grpc.StatusCode.INVALID_ARGUMENT,
         "input 'features': shape [2, 10] holds 20 values but data has 10"),
        ({"inputs": [{"name": "features", "shape": [101, 10], "datatype": "FP32",
                      "data": [0.0] * 1010}]},
         grpc.StatusCode.RESOURCE_EXHAUSTED,
         "101 rows sent; at most 100 are accepted per request (MAX_ROWS)"),
        ({"inputs": [{"name": f, "shape": [1], "datatype": "BYTES" if f == "bmi" else "FP32",
                      "data": ["fat" if f == "bmi" else 0.0]} for f in FEATURES]},
         grpc.StatusCode.INVALID_ARGUMENT,
         "input 'bmi', row 0: 'fat' is not a number"),
        ({"inputs": [{"name": f, "shape": [1], "datatype": "FP32", "data": [0.0]}
                     for f in FEATURES[:9]]},
         grpc.StatusCode.INVALID_ARGUMENT, "missing inputs: s6"),
    ],
)  # fmt: skip
def test_v2_errors_are_status_codes_with_the_rest_message(
    served: Served, inputs: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    request = v2.ModelInferRequest(model_name="diabetes")
    for given in inputs["inputs"]:
        t = request.inputs.add(name=given["name"], datatype=given["datatype"], shape=given["shape"])
        if given["datatype"] == "BYTES":
            t.contents.bytes_contents.extend(str(v).encode() for v in given["data"])
        else:
            t.contents.fp32_contents.extend(given["data"])
    error = served.failure(V2, "ModelInfer", request, v2.ModelInferResponse)
    assert (error.code(), error.details()) == (code, message)
    rest_answer = httpx.post(f"http://{served.http}/v2/models/diabetes/infer", json=inputs)
    assert rest_answer.json()["error"] == message


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (v2.ModelInferRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND,
         "model 'nope' is not served; models: diabetes, labels, messy"),
        (v2.ModelInferRequest(model_name="diabetes", model_version="7"),
         grpc.StatusCode.NOT_FOUND,
         "version 7 of model 'diabetes' is not served; versions: 1"),
        (v2.ModelInferRequest(model_name="diabetes", model_version="latest"),
         grpc.StatusCode.NOT_FOUND, "version 'latest' of model 'diabetes' is not served"),
        (v2.ModelInferRequest(
            model_name="diabetes",
            inputs=[v2.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP32", shape=[1, 10])],
            raw_input_contents=[b"\x00" * 39]),
         grpc.StatusCode.INVALID_ARGUMENT,
         "input 'features': 39 raw bytes are not a whole number of FP32"),
        (v2.ModelInferRequest(
            model_name="diabetes",
            inputs=[v2.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP32", shape=[1, 10])],
            raw_input_contents=[b"", b""]),
         grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents has 2 entries for 1 inputs"),
        (v2.ModelInferRequest(
            model_name="labels",
            inputs=[v2.ModelInferRequest.InferInputTensor(
                name="colour", datatype="BYTES", shape=[1])],
            raw_input_contents=[b"\x09\x00\x00\x00red"]),
         grpc.StatusCode.INVALID_ARGUMENT, "input 'colour': raw BYTES element 0 is cut short"),
        (v2.ModelInferRequest(
            model_name="diabetes",
            inputs=[v2.ModelInferRequest.InferInputTensor(
                name="features", datatype="COMPLEX", shape=[1, 10])]),
         grpc.StatusCode.INVALID_ARGUMENT, "input 'features': datatype 'COMPLEX' is not supported"),
    ],
)  # fmt: skip
def test_v2_bad_calls(
    served: Served, request_: v2.ModelInferRequest, code: grpc.StatusCode, message: str
) -> None:
    error = served.failure(V2, "ModelInfer", request_, v2.ModelInferResponse)
    assert (error.code(), error.details()) == (code, message)


def test_nan_and_infinity_are_missing_as_in_a_csv_cell(served: Served, model_root: Path) -> None:
    row = MATRIX[0].copy()
    row[2], row[5] = np.inf, np.nan
    request = v2_matrix([1, 10], row.tolist())
    expected = rest(
        model_root,
        [
            dict.fromkeys(FEATURES[:1], float(row[0]))
            | {
                f: (None if not np.isfinite(v) else float(v))
                for f, v in zip(FEATURES, row, strict=True)
            }
        ],
    )["predictions"]
    np.testing.assert_allclose(
        v2_output(infer(served, request), "predictions"), expected, atol=1e-6
    )


def tf_column(values: list[Any], dtype: tfs.DataType) -> tfs.TensorProto:
    tensor = tfs.TensorProto(dtype=dtype)
    tensor.tensor_shape.dim.add(size=len(values))
    if dtype == tfs.DT_STRING:
        tensor.string_val.extend(str(v).encode() for v in values)
    else:
        tensor.float_val.extend(np.nan if v is None else v for v in values)
    return tensor


def tf_predict(model: str, inputs: dict[str, tfs.TensorProto]) -> tfs.PredictRequest:
    request = tfs.PredictRequest()
    request.model_spec.name = model
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    return request


def test_tf_predict_by_feature_and_as_a_matrix(served: Served, model_root: Path) -> None:
    rows = matrix_rows()
    expected = rest(model_root, rows)["predictions"]
    by_feature = tf_predict(
        "diabetes", {f: tf_column([r[f] for r in rows], tfs.DT_FLOAT) for f in FEATURES}
    )
    matrix = tfs.TensorProto(dtype=tfs.DT_FLOAT, tensor_content=MATRIX.astype("<f4").tobytes())
    matrix.tensor_shape.dim.add(size=3)
    matrix.tensor_shape.dim.add(size=10)
    for request in (by_feature, tf_predict("diabetes", {"x": matrix})):
        response = served.call(TFS, "Predict", request, tfs.PredictResponse)
        out = response.outputs["predictions"]
        assert out.dtype == tfs.DT_DOUBLE
        assert [d.size for d in out.tensor_shape.dim] == [3]
        np.testing.assert_allclose(np.frombuffer(out.tensor_content, "<f8"), expected, atol=1e-6)
        assert (response.model_spec.name, response.model_spec.version.value) == ("diabetes", 1)


def test_tf_predict_classifier_with_text_numbers_and_output_filter(
    served: Served, model_root: Path
) -> None:
    inputs = {
        name: tf_column([r[name] for r in LABEL_ROWS], tfs.DT_STRING)
        for name in ("colour", "member", "rooms", "age")  # age as text: read by the cell rule
    }
    inputs["income"] = tf_column([r["income"] for r in LABEL_ROWS], tfs.DT_FLOAT)
    request = tf_predict("labels", inputs)
    response = served.call(TFS, "Predict", request, tfs.PredictResponse)
    expected = rest(model_root, LABEL_ROWS, "labels")
    labels = [v.decode() for v in response.outputs["label"].string_val]
    assert labels == [str(label) for label in expected["predictions"]]
    probabilities = np.frombuffer(response.outputs["probabilities"].tensor_content, "<f8")
    np.testing.assert_allclose(probabilities.reshape(2, -1), expected["probabilities"], atol=1e-6)
    request.output_filter.append("label")
    assert list(served.call(TFS, "Predict", request, tfs.PredictResponse).outputs) == ["label"]
    request.output_filter.append("logits")
    error = served.failure(TFS, "Predict", request, tfs.PredictResponse)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "unknown output_filter: logits; outputs: label, probabilities"


def example(cells: dict[str, Any], out: Any = None) -> Any:
    """`cells` as a tf.Example: ours, or `out`, another Example (tensorflow-serving-api's)."""
    out = tfs.Example() if out is None else out
    for name, value in cells.items():
        feature = out.features.feature[name]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, int):
            feature.int64_list.value.append(value)
        elif isinstance(value, float):
            feature.float_list.value.append(value)
        # None: a feature with no value, missing
    return out


def test_tf_classify_and_regress_with_context(served: Served, model_root: Path) -> None:
    shared = {"member": "true"}
    examples = [{k: v for k, v in r.items() if k != "member"} for r in LABEL_ROWS]
    request = tfs.ClassificationRequest()
    request.model_spec.name = "labels"
    listed = request.input.example_list_with_context
    listed.context.CopyFrom(example(shared))
    listed.examples.extend(example(e) for e in examples)
    response = served.call(TFS, "Classify", request, tfs.ClassificationResponse)
    expected = rest(model_root, [{**e, **shared} for e in examples], "labels")
    for got, want in zip(response.result.classifications, expected["probabilities"], strict=True):
        assert [c.label for c in got.classes] == [str(c) for c in expected["classes"]]
        np.testing.assert_allclose([c.score for c in got.classes], want, atol=1e-6)
    regress = tfs.RegressionRequest()
    regress.model_spec.name = "diabetes"
    rows = matrix_rows()
    regress.input.example_list.examples.extend(example(r) for r in rows)
    values = served.call(TFS, "Regress", regress, tfs.RegressionResponse).result.regressions
    # Regression.value is a float32 in the protocol: equal to its precision
    np.testing.assert_allclose(
        [v.value for v in values], rest(model_root, rows)["predictions"], rtol=1e-6
    )
    regress.model_spec.name = "labels"
    error = served.failure(TFS, "Regress", regress, tfs.RegressionResponse)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "model 'labels' is a classifier: use Classify or Predict"


def test_tf_metadata_and_status(served: Served) -> None:
    request = tfs.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "labels"
    response = served.call(TFS, "GetModelMetadata", request, tfs.GetModelMetadataResponse)
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signature = tfs.SignatureDefMap.FromString(packed.value).signature_def["serving_default"]
    rest_meta = httpx.get(f"http://{served.http}/v1/models/labels/metadata").json()
    rest_signature = rest_meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    for kind in ("inputs", "outputs"):
        given = {
            name: (tfs.DataType.Name(t.dtype), [d.size for d in t.tensor_shape.dim])
            for name, t in getattr(signature, kind).items()
        }
        listed = {
            name: (t["dtype"], [int(d["size"]) for d in t["tensor_shape"]["dim"]])
            for name, t in rest_signature[kind].items()
        }
        assert given == listed
    status = tfs.GetModelStatusRequest()
    status.model_spec.name = "labels"
    (version,) = served.call(
        MODELS, "GetModelStatus", status, tfs.GetModelStatusResponse
    ).model_version_status
    assert (version.version, version.state) == (1, tfs.ModelVersionStatus.AVAILABLE)
    status.model_spec.version.value = 2
    error = served.failure(MODELS, "GetModelStatus", status, tfs.GetModelStatusResponse)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    status.model_spec.version_label = "stable"
    error = served.failure(MODELS, "GetModelStatus", status, tfs.GetModelStatusResponse)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    request.ClearField("metadata_field")
    error = served.failure(TFS, "GetModelMetadata", request, tfs.GetModelMetadataResponse)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_follows_readiness_and_unknown_services(served: Served, model_root: Path) -> None:
    def check(service: str) -> int:
        answer = served.call(
            HEALTH, "Check", health_pb2.HealthCheckRequest(service=service),
            health_pb2.HealthCheckResponse,
        )  # fmt: skip
        return int(answer.status)

    for service in ("", V2, TFS, MODELS, "liveness"):
        assert check(service) == health_pb2.HealthCheckResponse.SERVING
    error = served.failure(
        HEALTH, "Check", health_pb2.HealthCheckRequest(service="nope"),
        health_pb2.HealthCheckResponse,
    )  # fmt: skip
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_request_ids_metrics_and_access_lines(
    served: Served, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.service import service_logging, stderr_until

    request = v2_matrix([1, 10], MATRIX[0].tolist())
    with service_logging("info"):
        capfd.readouterr()
        stub = served.channel.unary_unary(
            f"/{V2}/ModelInfer",
            request_serializer=v2.ModelInferRequest.SerializeToString,
            response_deserializer=v2.ModelInferResponse.FromString,
        )
        _, call = stub.with_call(request, metadata=(("x-request-id", "grpc-req-1"),))
        assert dict(call.trailing_metadata() or ())["x-request-id"] == "grpc-req-1"
        written = stderr_until(capfd, "grpc-req-1")
    (line,) = [json.loads(x) for x in written.splitlines() if "grpc-req-1" in x]
    assert line["route"] == f"/{V2}/ModelInfer"
    assert (line["grpc_code"], line["rows"], line["model_name"]) == ("OK", 1, "diabetes")
    served.failure(V2, "ModelMetadata", v2.ModelMetadataRequest(name="nope"),
                   v2.ModelMetadataResponse)  # fmt: skip
    metrics = httpx.get(f"http://{served.http}/metrics").text
    infer_ok = f'tabserve_grpc_requests_total{{code="OK",method="/{V2}/ModelInfer"}}'
    not_found = f'tabserve_grpc_requests_total{{code="NOT_FOUND",method="/{V2}/ModelMetadata"}}'
    assert infer_ok in metrics
    assert not_found in metrics
    assert f'tabserve_grpc_request_duration_seconds_count{{method="/{V2}/ModelInfer"}}' in metrics
    assert 'tabserve_rows_predicted_total{model="diabetes"}' in metrics


def test_api_keys_over_metadata_probes_open(model_root: Path) -> None:
    with grpc_service(model_root, api_keys="s3cret") as s:
        request = v2_matrix([1, 10], MATRIX[0].tolist())
        error = s.failure(V2, "ModelInfer", request, v2.ModelInferResponse)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert str(error.details()).startswith("an API key is required")
        error = s.failure(
            V2, "ModelInfer", request, v2.ModelInferResponse, [("x-api-key", "wrong")]
        )
        assert (error.code(), error.details()) == (
            grpc.StatusCode.UNAUTHENTICATED, "the API key is not valid",
        )  # fmt: skip
        for metadata in ([("x-api-key", "s3cret")], [("authorization", "Bearer s3cret")]):
            assert s.call(V2, "ModelInfer", request, v2.ModelInferResponse, metadata).outputs
        assert s.call(V2, "ServerReady", v2.ServerReadyRequest(), v2.ServerReadyResponse).ready
        health = s.call(
            HEALTH, "Check", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        error = s.failure(
            V2, "ServerMetadata", v2.ServerMetadataRequest(), v2.ServerMetadataResponse
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_message_size_limit_is_max_body_bytes(model_root: Path) -> None:
    with grpc_service(model_root, max_body_bytes=4096) as s:
        small = v2_matrix([1, 10], MATRIX[0].tolist())
        assert s.call(V2, "ModelInfer", small, v2.ModelInferResponse).outputs
        large = v2_matrix([200, 10], np.resize(MATRIX.ravel(), 2000).tolist())
        assert large.ByteSize() > 4096
        error = s.failure(V2, "ModelInfer", large, v2.ModelInferResponse)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_request_timeout_is_a_deadline(model_root: Path) -> None:
    # The SavedModel's batcher holds rows 50 ms for company: the call outlives the deadline.
    with grpc_service(
        model_root,
        model_runtime="savedmodel",
        request_timeout_seconds=0.001,
        batch_timeout_micros=50_000,
    ) as s:
        request = v2_matrix([1, 10], MATRIX[0].tolist())
        error = s.failure(V2, "ModelInfer", request, v2.ModelInferResponse)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "no answer within 0.001 s (REQUEST_TIMEOUT_SECONDS)",
        )
