"""A corpus of hostile and malformed bodies: each gets its documented 4xx in the one error shape,
with a message that names what was wrong, and leaves the service serving the same predictions.

Every case runs against a client shared by the module; after each one, GET /readyz must still be
200 and a fixed valid request must predict exactly what it predicted before the corpus ran.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers.service import serve

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROW: dict[str, Any] = dict(
    zip(
        FEATURES,
        [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018],
        strict=True,
    )
)
LABEL_ROW: dict[str, Any] = {
    "age": 35,
    "income": 72000,
    "colour": "red",
    "member": True,
    "rooms": 4,
}
UNICODE_NAMES = {
    "latin-accent": "âge",
    "cjk": "年龄",
    "emoji": "🎂",
    "right-to-left": "العمر",
}
LONG_NAME = "k" * 100_000  # a 100 KB feature name
MAX_ERROR_BYTES = 10_000  # no error answer echoes a huge input back
SMALL_LIMIT = 2048  # MAX_BODY_BYTES of the `limited` client
SMALL_MAX_ROWS = 5  # MAX_ROWS of the `limited` client

PREDICT = "/predict"
TF_SERVING = "/v1/models/diabetes:predict"
V2 = "/v2/models/diabetes/infer"


# --- building bodies as text, so that they can be what no JSON encoder would write ------------


def row_text(head: str = "", base: dict[str, Any] | None = None) -> str:
    """A row as JSON text: `head` verbatim first, then every feature of `base` (ROW by default)
    that `head` does not mention."""
    base = ROW if base is None else base
    rest = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in base.items() if f'"{k}"' not in head]
    return "{" + ", ".join([head, *rest] if head else rest) + "}"


def instances(*rows: str) -> bytes:
    return ('{"instances": [' + ", ".join(rows) + "]}").encode()


def tensor(name: str, data: str, shape: str = "[1]") -> str:
    return f'{{"name": {json.dumps(name)}, "datatype": "FP64", "shape": {shape}, "data": {data}}}'


def v2_body(*tensors: str) -> bytes:
    return ('{"inputs": [' + ", ".join(tensors) + "]}").encode()


def v2_columns(**changes: str) -> list[str]:
    """One [1] tensor per feature, values from ROW unless changed."""
    return [tensor(f, changes.get(f, f"[{json.dumps(ROW[f])}]")) for f in FEATURES]


def v2_matrix(values: list[str], rows: int = 1) -> bytes:
    return v2_body(tensor("features", "[" + ", ".join(values) + "]", f"[{rows}, {len(FEATURES)}]"))


VALID = {
    PREDICT: json.dumps({"instances": [ROW]}).encode(),
    TF_SERVING: json.dumps({"instances": [ROW]}).encode(),
    V2: v2_body(*v2_columns()),
}
NESTED = "[" * 10_000 + "]" * 10_000
UNKNOWN = r"unknown|extra|not (permitted|allowed|a feature)"  # how an unknown feature is worded


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int | tuple[int, ...]
    says: tuple[str, ...] = ()
    """Regular expressions that must all be found (case-insensitive) in the error text: the
    `error` message and every detail's `loc` and `message`."""
    content_type: str = "application/json"
    same_as: dict[str, Any] | None = None
    """For a 200: the row that must predict the same value."""


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in cases]


# --- the corpus --------------------------------------------------------------------------------

MALFORMED = [
    Case("truncated", b'{"instances": [{"age": 0.1', 400, ("JSON",)),
    Case("trailing-comma", instances(row_text(), ""), 400, ("JSON",)),
    Case("single-quotes", instances(row_text()).replace(b'"', b"'"), 400, ("JSON",)),
    Case("empty", b"", 400, ("empty",)),
    Case("whitespace-only", b" \r\n\t ", 400, ("empty",)),
    # The body is JSON whatever its Content-Type (except CSV); XML is therefore not JSON.
    Case("xml", b"<instances><age>1</age></instances>", 400, ("JSON",), "application/xml"),
    Case("invalid-utf8", instances(row_text('"age": "?"')).replace(b'"?"', b'"\xff\xfe"'), 400),
    Case("invalid-utf8-raw", b'{"instances": [{"\xc3\x28": 1}]}', 400),
    # 10,000 levels: the parser's depth limit answers, not Python's recursion limit.
    Case("deep-open-brackets", b"[" * 10_000, (400, 422)),
    Case("deep-balanced-array", NESTED.encode(), (400, 422)),
    Case("deep-in-a-value", instances(row_text(f'"age": {NESTED}')), (400, 422)),
    Case("deep-objects", ('{"a": ' * 10_000 + "1" + "}" * 10_000).encode(), (400, 422)),
]

NOT_JSON_NUMBERS = [
    # Not JSON, but parsed so that the answer can say which value is not a finite number.
    Case("nan-literal", instances(row_text('"age": NaN')), 422, ("age", "finite")),
    Case("infinity-literal", instances(row_text('"age": Infinity')), 422, ("age", "finite")),
    Case("minus-infinity-literal", instances(row_text('"age": -Infinity')), 422, ("age", "finite")),
]

NUMBERS = [
    Case("overflow-1e400", instances(row_text('"age": 1e400')), 422, ("age", "finite")),
    Case("overflow-minus-1e400", instances(row_text('"age": -1e400')), 422, ("age", "finite")),
    Case("overflow-just-above-max", instances(row_text('"age": 1.8e308')), 422, ("age", "finite")),
    Case("overflow-integer", instances(row_text('"age": 1' + "0" * 400)), 422, ("age", "finite")),
    # Underflow is not an error: these are 0 (or as near as a float32 input can tell).
    Case("underflow-1e-400", instances(row_text('"age": 1e-400')), 200, same_as={"age": 0.0}),
    Case("subnormal-5e-324", instances(row_text('"age": 5e-324')), 200, same_as={"age": 0.0}),
    Case(
        "largest-double",
        instances(row_text('"age": 1.7976931348623157e308')),
        422,
        ("age", "float32"),
    ),
    # Finite as a double, beyond float32 once standardised (the model's input is float32).
    Case("beyond-float32", instances(row_text('"bmi": 1e39')), 422, ("bmi", "float32")),
    Case("beyond-float32-negative", instances(row_text('"bmi": -1e39')), 422, ("bmi", "float32")),
]

DUPLICATES = [
    # JSON parsers silently keep the last of a repeated key; the service refuses the ambiguity.
    Case(
        "duplicate-key", instances(row_text('"age": 0.01, "age": 0.02')), 422, ("age", "duplicate")
    ),
    Case(
        "duplicate-key-in-second-row",
        instances(row_text(), row_text('"bmi": 0.01, "bmi": 0.01')),
        422,
        ("bmi", "duplicate"),
    ),
    Case(
        "duplicate-key-escaped",
        instances(row_text('"age": 0.01, "\\u0061ge": 0.02')),
        422,
        ("age", "duplicate"),
    ),
    Case(
        "duplicate-key-colon-string",
        instances(row_text('"age": 0.01, "age": "a:b:c"')),
        422,
        ("age", "duplicate"),
    ),
    Case(
        "duplicate-instances",
        ('{"instances": [], "instances": [' + row_text() + "]}").encode(),
        422,
        ("instances", "duplicate"),
    ),
]

LONG_VALUES = [
    Case("1mb-string-as-number", instances(row_text(f'"age": "{"1" * 1_000_000}"')), 422, ("age",)),
    Case(
        "100kb-feature-name", instances(row_text(f'"{LONG_NAME}": 1')), 422, ("kkkkkkkk", UNKNOWN)
    ),
]

UNICODE = [
    # Sent as raw UTF-8 (json.dumps would escape them to ASCII).
    Case(
        f"unicode-name-{label}",
        instances(row_text(f'"{name}": 1')),
        422,
        (re.escape(name), UNKNOWN),
    )
    for label, name in UNICODE_NAMES.items()
] + [
    Case(
        "unicode-name-escaped", instances(row_text('"\\u5e74\\u9f84": 1')), 422, ("年龄", UNKNOWN)
    ),
    # Valid JSON syntax, but not a Unicode string: it cannot be echoed back as UTF-8.
    Case("lone-surrogate-name", instances(row_text('"\\ud800": 1')), (400, 422)),
]

SHAPES = [
    Case("null", b"null", (400, 422), ("object",)),
    Case("top-level-array", json.dumps([ROW]).encode(), (400, 422), ("object",)),
    Case("top-level-string", b'"instances"', (400, 422), ("object",)),
    Case("instances-object", b'{"instances": {}}', 422, ("instances",)),
    Case("instances-empty", b'{"instances": []}', 422, ("instances", "at least (1|one)")),
    Case("instances-null", b'{"instances": null}', 422, ("instances",)),
]

CONTENT_TYPES = [
    # A CSV body is read as CSV: this one's header is JSON text, so no row is a valid row.
    Case("json-sent-as-csv", VALID[PREDICT], 422, ("csv|instances|column",), "text/csv"),
]

PREDICT_CASES = (
    MALFORMED
    + NOT_JSON_NUMBERS
    + NUMBERS
    + DUPLICATES
    + LONG_VALUES
    + UNICODE
    + SHAPES
    + CONTENT_TYPES
)

# A bad request is a 400 in this protocol. TF Serving's clients send NaN and Infinity (Python's
# json does): they parse, and are refused as values that are not finite numbers.
TF_SERVING_CASES = [
    Case("truncated", b'{"instances": [{"age": 0.1', 400, ("JSON",)),
    Case("empty", b"", 400, ("empty",)),
    Case("xml", b"<instances/>", 400, ("JSON",), "application/xml"),
    Case("invalid-utf8", b'{"instances": [{"\xc3\x28": 1}]}', 400),
    Case("deep-balanced-array", NESTED.encode(), (400, 422)),
    Case("null", b"null", 400, ("object",)),
    Case(
        "duplicate-key", instances(row_text('"age": 0.01, "age": 0.02')), 400, ("age", "duplicate")
    ),
    Case("overflow-1e400", instances(row_text('"age": 1e400')), 400, ("age", "finite")),
    Case("nan-literal", instances(row_text('"age": NaN')), 400, ("age", "finite")),
    Case("beyond-float32", instances(row_text('"bmi": 1e39')), 400, ("bmi", "float32")),
    Case("unicode-name", instances(row_text('"年龄": 1')), 400, ("年龄", UNKNOWN)),
    Case(
        "100kb-feature-name", instances(row_text(f'"{LONG_NAME}": 1')), 400, ("kkkkkkkk", UNKNOWN)
    ),
    Case("1mb-string-as-number", instances(row_text(f'"age": "{"1" * 1_000_000}"')), 400, ("age",)),
]

V2_CASES = [
    Case("truncated", b'{"inputs": [{"name": "age"', 400, ("JSON",)),
    Case("empty", b"", 400, ("empty",)),
    Case("xml", b"<inputs/>", 400, ("JSON",), "application/xml"),
    Case("invalid-utf8", b'{"inputs": [{"name": "\xc3\x28"}]}', 400),
    Case("deep-balanced-array", NESTED.encode(), (400, 422)),
    Case("deep-data", v2_body(tensor("features", NESTED, "[1, 10]")), (400, 422)),
    Case("null", b"null", 400, ("object",)),
    Case(
        "duplicate-key",
        v2_body(
            *v2_columns()[1:],
            '{"name": "age", "datatype": "FP64", "shape": [1], "data": [0.01], "data": [0.02]}',
        ),
        400,
        ("data", "duplicate"),
    ),
    Case("overflow-1e400", v2_matrix(["1e400"] + ["0.01"] * 9), 400, ("age", "finite")),
    Case("beyond-float32", v2_body(*v2_columns(bmi="[1e39]")), 400, ("bmi", "float32")),
    Case(
        "unicode-input-name", v2_body(*v2_columns(), tensor("年龄", "[1]")), 400, ("年龄", UNKNOWN)
    ),
    Case(
        "100kb-input-name",
        v2_body(*v2_columns(), tensor(LONG_NAME, "[1]")),
        400,
        ("kkkkkkkk", UNKNOWN),
    ),
]

# The "labels" model has categorical features, which take strings: a ':' in a value is data.
LABEL_CASES = [
    Case("category-with-colons", instances(row_text('"colour": "a:b:c"', LABEL_ROW)), 200),
    Case(
        "category-that-looks-like-keys",
        instances(row_text('"colour": "\\"age\\": 1, \\"age\\": 2"', LABEL_ROW)),
        200,
    ),
    Case(
        "duplicate-category-with-colons",
        instances(row_text('"colour": "red:green", "colour": "blue"', LABEL_ROW)),
        422,
        ("colour", "duplicate"),
    ),
    Case(
        "duplicate-category-same-colons",
        instances(row_text('"colour": "a:b", "colour": "a:b"', LABEL_ROW)),
        422,
        ("colour", "duplicate"),
    ),
    Case(
        "overflow-numeric",
        instances(row_text('"income": 1e400', LABEL_ROW)),
        422,
        ("income", "finite"),
    ),
    Case("nan-literal", instances(row_text('"income": NaN', LABEL_ROW)), 422, ("income", "finite")),
    Case(
        "category-as-object", instances(row_text('"colour": {"a": 1}', LABEL_ROW)), 422, ("colour",)
    ),
    Case(
        "unicode-name",
        instances(row_text('"couleur 🎨": "red"', LABEL_ROW)),
        422,
        ("couleur 🎨", UNKNOWN),
    ),
]


# --- the service, shared by the module ---------------------------------------------------------


@dataclass
class Service:
    """A running app, a valid body per path, and what each answered before any bad input."""

    client: TestClient
    valid: dict[str, bytes]
    baseline: dict[str, bytes]

    def predict(self, path: str, body: bytes) -> Any:
        response = self.client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text[:500]
        return response.json()

    def assert_unchanged(self) -> None:
        assert self.client.get("/readyz").status_code == 200
        for path, body in self.valid.items():
            assert self.client.post(path, content=body).content == self.baseline[path], path


def start(client: TestClient, valid: dict[str, bytes]) -> Iterator[Service]:
    with client:
        baseline = {path: client.post(path, content=body).content for path, body in valid.items()}
        for path, answer in baseline.items():
            assert b'"error"' not in answer, (path, answer)
        yield Service(client, valid, baseline)


@pytest.fixture(scope="module")
def diabetes(model_root: Path) -> Iterator[Service]:
    yield from start(serve(model_root, "diabetes"), VALID)


@pytest.fixture(scope="module")
def limited(model_root: Path) -> Iterator[Service]:
    """MAX_BODY_BYTES and MAX_ROWS small enough to reach with small bodies."""
    client = serve(model_root, "diabetes", max_body_bytes=SMALL_LIMIT, max_rows=SMALL_MAX_ROWS)
    yield from start(client, VALID)


@pytest.fixture(scope="module")
def labels(model_root: Path) -> Iterator[Service]:
    yield from start(serve(model_root, "labels"), {PREDICT: instances(row_text("", LABEL_ROW))})


@pytest.fixture(scope="module")
def huge_body() -> bytes:
    """About 20 MB, built once: one row whose `age` is a 20 MB string."""
    return instances('{"age": "' + "x" * (20 * 1024 * 1024) + '"}')


# --- checks ------------------------------------------------------------------------------------


def assert_error(response: Any, status: int | tuple[int, ...], says: tuple[str, ...] = ()) -> None:
    """The status, the one error shape, a small UTF-8 JSON answer, and a message that says what."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    assert len(response.content) < MAX_ERROR_BYTES, f"{len(response.content)} bytes of error"
    body = json.loads(response.content.decode("utf-8"))  # strict: must be valid UTF-8
    assert isinstance(body, dict)
    assert set(body) <= {"error", "details"}, body
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    text = body["error"]
    if "details" in body:
        assert isinstance(body["details"], list)
        assert body["details"]
        for detail in body["details"]:
            assert set(detail) == {"loc", "message"}, detail
            assert isinstance(detail["loc"], str)
            assert isinstance(detail["message"], str)
            text += f"\n{detail['loc']}: {detail['message']}"
    for pattern in says:
        assert re.search(pattern, text, re.IGNORECASE), (pattern, text[:500])


def post(service: Service, path: str, case: Case) -> Any:
    return service.client.post(path, content=case.body, headers={"content-type": case.content_type})


def first_prediction(body: dict[str, Any]) -> Any:
    """The first row's prediction in any of the three protocols' answers."""
    if "outputs" in body:  # v2
        return body["outputs"][0]["data"][0]
    return body["predictions"][0]


def run_case(service: Service, path: str, case: Case) -> None:
    response = post(service, path, case)
    if case.status == 200:
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        value = first_prediction(body)
        if "classes" in body:  # a classifier: a label, and finite probabilities
            assert value in body["classes"]
            assert all(math.isfinite(p) for p in body["probabilities"][0])
        else:  # a number, never null (what orjson writes for NaN) nor infinite
            assert isinstance(value, float), body
            assert math.isfinite(value)
        if case.same_as is not None:
            expected = service.predict(
                path, json.dumps({"instances": [ROW | case.same_as]}).encode()
            )
            assert value == pytest.approx(first_prediction(expected), rel=1e-6)
    else:
        assert_error(response, case.status, case.says)
    service.assert_unchanged()


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(PREDICT_CASES))
def test_predict(diabetes: Service, case: Case) -> None:
    run_case(diabetes, PREDICT, case)


@pytest.mark.parametrize("case", params(TF_SERVING_CASES))
def test_tf_serving_predict(diabetes: Service, case: Case) -> None:
    run_case(diabetes, TF_SERVING, case)


@pytest.mark.parametrize("case", params(V2_CASES))
def test_v2_infer(diabetes: Service, case: Case) -> None:
    run_case(diabetes, V2, case)


@pytest.mark.parametrize("case", params(LABEL_CASES))
def test_categorical_model(labels: Service, case: Case) -> None:
    run_case(labels, PREDICT, case)


@pytest.mark.parametrize("path", [PREDICT, TF_SERVING, V2])
def test_a_20_mb_body_is_413(diabetes: Service, huge_body: bytes, path: str) -> None:
    response = diabetes.client.post(path, content=huge_body)
    assert_error(response, 413, ("MAX_BODY_BYTES",))
    diabetes.assert_unchanged()


@pytest.mark.parametrize("path", [PREDICT, TF_SERVING, V2])
def test_a_body_over_a_small_limit_is_413(limited: Service, path: str) -> None:
    body = VALID[path] + b" " * (3 * 1024 - len(VALID[path]))  # valid JSON, 3 KB
    assert len(body) == 3 * 1024
    response = limited.client.post(path, content=body)
    assert_error(response, 413, ("MAX_BODY_BYTES",))
    limited.assert_unchanged()


@pytest.mark.parametrize("path", [PREDICT, TF_SERVING, V2])
def test_a_streamed_body_is_counted_without_content_length(limited: Service, path: str) -> None:
    sent: list[dict[str, str]] = []

    def chunks(body: bytes, size: int = 512) -> Iterator[bytes]:
        yield from (body[i : i + size] for i in range(0, len(body), size))

    small = limited.client.post(path, content=chunks(VALID[path]))
    sent.append(dict(small.request.headers))
    assert small.status_code == 200, small.text[:500]
    big = VALID[path] + b" " * (3 * 1024 - len(VALID[path]))
    response = limited.client.post(path, content=chunks(big))
    sent.append(dict(response.request.headers))
    assert_error(response, 413, ("MAX_BODY_BYTES",))
    for headers in sent:  # really chunked: the app cannot trust a declared length
        assert "content-length" not in headers
        assert headers.get("transfer-encoding") == "chunked"
    limited.assert_unchanged()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (PREDICT, json.dumps({"instances": [ROW] * (SMALL_MAX_ROWS + 1)}).encode()),
        (TF_SERVING, json.dumps({"instances": [ROW] * (SMALL_MAX_ROWS + 1)}).encode()),
        (
            V2,
            v2_matrix(
                [json.dumps(ROW[f]) for f in FEATURES] * (SMALL_MAX_ROWS + 1), SMALL_MAX_ROWS + 1
            ),
        ),
    ],
    ids=["predict", "tf-serving", "v2"],
)
def test_more_rows_than_max_rows_is_413(limited: Service, path: str, body: bytes) -> None:
    assert len(body) < SMALL_LIMIT  # so MAX_ROWS, not MAX_BODY_BYTES, is what is exceeded
    response = limited.client.post(path, content=body)
    assert_error(response, 413, ("MAX_ROWS",))
    at_the_limit = limited.client.post(
        PREDICT, content=json.dumps({"instances": [ROW] * SMALL_MAX_ROWS}).encode()
    )
    assert at_the_limit.status_code == 200
    limited.assert_unchanged()


def test_the_corpus_left_the_service_unchanged(diabetes: Service) -> None:
    """Run last: after every case above, readiness and the same predictions as before."""
    diabetes.assert_unchanged()
