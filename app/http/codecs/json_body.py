"""JSON request bodies parsed and validated in one step by pydantic, whatever the content type."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from app.errors import BadRequest, InvalidInput, MalformedBody, shown, validation_failure

M = TypeVar("M", bound=BaseModel)


def parse_json(raw: bytes, model: type[M]) -> M:
    """Validate the raw body against `model`.

    pydantic parses and validates the bytes in Rust, without building Python objects first,
    and clients that send JSON with a form or text content type (curl -d) are still understood.
    """
    if not raw.strip():
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failure(exc.errors()) from None


def reject_duplicate_features(raw: bytes, cells: int | None = None) -> None:
    """422 when an object of a native request repeats a key.

    JSON parsers keep the last of repeated keys without a word; a row with two values for one
    feature is ambiguous, so it is refused. Every key is followed by a colon, so a valid
    `{"instances": [...]}` body of `cells` row cells with no more than 1 + `cells` colons
    repeats no key, and the common case costs one byte count. Only otherwise (colons inside
    strings, or `cells` unknown) is it parsed again, keeping the pairs.
    """
    if cells is not None and raw.count(b":") <= 1 + cells:
        return
    found = _first_repeated_key(raw)
    if found is None:
        return
    index, key, top = found
    if top:
        raise InvalidInput(f"the request body has a duplicate key {shown(key)!r}")
    raise InvalidInput(
        f"instances[{index}]: duplicate feature {shown(key)!r}; each may appear once per row",
        [{"loc": f"instances[{index}].{shown(key)}", "message": "duplicate feature"}],
    )


def _first_repeated_key(raw: bytes) -> tuple[int, str, bool] | None:
    """(index of the object in the order objects close, the key, whether that object is the
    body itself) of the first key an object repeats; None when none does or the body is not
    JSON. Rows close in order, and before the body around them, which closes last."""
    closed = 0
    first: tuple[int, str] | None = None

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal closed, first
        obj = dict(pairs)
        if first is None and len(obj) != len(pairs):
            seen: set[str] = set()
            first = (closed, next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
        closed += 1
        return obj

    try:
        json.loads(raw, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):
        return None  # not JSON: the caller's own parse says so
    if first is None:
        return None
    return first[0], first[1], first[0] == closed - 1


def validated_rows(request_model: type[BaseModel], rows: object) -> list[Any]:
    """Rows built by a protocol route, checked against the model's request schema.

    Raises pydantic's ValidationError: each protocol words the failure its own way.
    """
    body = request_model.model_validate({"instances": rows})
    instances: list[Any] = body.instances  # type: ignore[attr-defined]
    return instances


def json_object(raw: bytes) -> dict[str, Any]:
    """The body of a protocol request as a JSON object, refusing repeated keys (400).

    NaN and Infinity literals parse (TF Serving's clients send them), so that the row
    validation can say which value is not a finite number.
    """
    if not raw.strip():
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        body = pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        raise MalformedBody(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    repeated = _first_repeated_key(raw)
    if repeated is not None:
        raise BadRequest(f"request body has a duplicate key {shown(repeated[1])!r} in one object")
    return body


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` that shows `model` as the request body in /docs and /openapi.json."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def protocol_body(raw: bytes, model: type[M]) -> M:
    """A TF Serving or v2 request parsed through the model that /docs shows for it, so the
    documentation and the parser cannot drift: 400 naming the first field that is wrong."""
    body = json_object(raw)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = validation_failure(exc.errors())
        raise BadRequest(error.message, error.details) from None
