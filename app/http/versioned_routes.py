"""Routes that address a model as TF Serving and KServe do: by name (whichever version is
served), and by name and version."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.http.codecs.json_body import documented_body

Endpoint = Callable[..., Awaitable[Any]]


def add_model_route(
    router: APIRouter,
    path: str,
    endpoint: Endpoint,
    method: str,
    *,
    responses: dict[int | str, dict[str, Any]],
    body: type[BaseModel] | None = None,
) -> None:
    """`path` holds `{name}`; the same endpoint also answers at `{name}/versions/{version}`."""
    options: dict[str, Any] = {"methods": [method], "responses": responses}
    if body is not None:
        options["openapi_extra"] = documented_body(body)
    router.add_api_route(path, _without_version(endpoint), **options)
    router.add_api_route(path.replace("{name}", "{name}/versions/{version}"), endpoint, **options)


def _without_version(endpoint: Endpoint) -> Endpoint:
    """`endpoint` with its `version` parameter taken away, so that the unversioned path does
    not offer `?version=` in the OpenAPI document."""
    signature = inspect.signature(endpoint, eval_str=True)

    @functools.wraps(endpoint)
    async def unversioned(**kwargs: Any) -> Any:
        return await endpoint(**kwargs, version=None)

    parameters = [p for p in signature.parameters.values() if p.name != "version"]
    unversioned.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return unversioned
