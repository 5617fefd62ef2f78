"""JSON request bodies parsed and validated in one step by pydantic, whatever the content type."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from app.errors import BadRequest, MalformedBody, validation_failure

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


def validated_rows(request_model: type[BaseModel], rows: object) -> list[Any]:
    """Rows built by a protocol route, checked against the model's request schema.

    Raises pydantic's ValidationError: each protocol words the failure its own way.
    """
    body = request_model.model_validate({"instances": rows})
    instances: list[Any] = body.instances  # type: ignore[attr-defined]
    return instances


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, NaN and Infinity allowed (TF Serving's clients send them)."""
    if not raw.strip():
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        body = pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        raise MalformedBody(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
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
