"""Answers shared by every protocol's routes: fast JSON, and a row error in a protocol's terms."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from fastapi import Response

from app.errors import BadRequest, InvalidInput, ServiceError


def json_response(body: dict[str, Any]) -> Response:
    # orjson writes floats and numpy arrays several times faster than FastAPI's encoder,
    # which would also validate the body against the response model a second time.
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def as_bad_request(error: ServiceError, key: str = "instances") -> BadRequest:
    """A row the model cannot take, as TF Serving and v2 answer it (400, not 422), with its
    place named after the protocol's own field (`inputs[0].age`, not `instances[0].age`)."""
    return BadRequest(
        error.message.replace("instances", key, 1),
        [{**d, "loc": str(d.get("loc", "")).replace("instances", key, 1)} for d in error.details],
    )


@contextmanager
def protocol_errors(key: str = "instances") -> Iterator[None]:
    """Around a TF Serving or v2 prediction: a value the model cannot take (InvalidInput, 422
    on /predict) is these protocols' 400 / INVALID_ARGUMENT, named after `key`."""
    try:
        yield
    except InvalidInput as exc:
        raise as_bad_request(exc, key) from None
