"""/openapi.json (and so /docs) describes the default model's own features, with an example."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.bundle import CategoricalFeature, NumericFeature, PreprocessingStats
from app.model.state import ServiceState
from app.ops.api_keys import is_open


def example_row(stats: PreprocessingStats) -> dict[str, Any]:
    """A typical row from the training data: each number's mean, each category's most common."""
    row: dict[str, Any] = {}
    for f in stats.features:
        if isinstance(f, NumericFeature):
            row[f.name] = round(f.mean, 4)
        elif isinstance(f, CategoricalFeature):
            row[f.name] = f.vocabulary[0] if f.vocabulary else None
    return row


def install_model_openapi(app: FastAPI, state: ServiceState, *, secured: bool = False) -> None:
    """Rebuild the OpenAPI document whenever the default model (name, version) changes, with
    POST /predict's body schema and example taken from that model. `secured` (API keys are
    on) documents the key schemes, so /docs can send a key."""
    generate = app.openapi
    built_for: list[tuple[str, int] | None] = [None]

    def openapi() -> dict[str, Any]:
        served = state.models.get(state.default) if state.models else None
        key = None if served is None else (served.predictor.name, served.predictor.version)
        if app.openapi_schema is None or key != built_for[0]:
            app.openapi_schema = None
            schema = generate()
            if served is not None:
                body = served.request_model.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                schema.setdefault("components", {}).setdefault("schemas", {}).update(
                    body.pop("$defs", {})
                )
                body["examples"] = [{"instances": [example_row(served.predictor.stats)]}]
                content = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
                content["application/json"]["schema"] = body
            _document_middleware_answers(schema)
            if secured:
                _document_api_keys(schema)
            built_for[0] = key
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def _document_middleware_answers(schema: dict[str, Any]) -> None:
    """The statuses the middleware may give any operation, before or around its route."""
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault("504", _error("No answer within REQUEST_TIMEOUT_SECONDS."))
            if method in ("post", "put", "patch"):
                responses.setdefault("413", _error("A body larger than MAX_BODY_BYTES."))


_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def _document_api_keys(schema: dict[str, Any]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = _SCHEMES
    unauthorized = _error("No API key, or not a valid one.")
    for path, operations in schema["paths"].items():
        if is_open(path):
            continue
        for operation in operations.values():
            operation["security"] = [{name: []} for name in _SCHEMES]
            operation.setdefault("responses", {})["401"] = unauthorized
