"""GET /model/shadow and /models/{name}/shadow: how far a shadow version's predictions are from
the served version's on the same rows (see `app.model.shadow` for what is compared and how)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.errors import NotFound
from app.http.dependencies import service_state
from app.http.schemas import ErrorResponse, ShadowReport, error_responses
from app.http.versioned_routes import add_model_route
from app.model.state import ServedModel

router = APIRouter(tags=["shadow"])

_ERRORS = {
    **error_responses(503),
    404: {
        "model": ErrorResponse,
        "description": "No such model, or not at that version, or it has no shadow version.",
    },
}


def shadow_report(served: ServedModel) -> ShadowReport:
    shadow = served.inference.shadow
    if shadow is None:
        raise NotFound(
            f"model {served.predictor.name!r} has no shadow version (set one in SHADOW_VERSIONS)"
        )
    return ShadowReport.model_validate(shadow.report())


@router.get("/model/shadow", responses=_ERRORS)
async def default_model_shadow(request: Request) -> ShadowReport:
    """The default model's shadow version against the version served: rows compared, the mean
    and 99th percentile absolute difference (regression) or the agreement (classification)
    over the last SHADOW_WINDOW_ROWS rows, and the shadow's own latency."""
    return shadow_report(service_state(request).require())


async def model_shadow(request: Request, name: str, version: int | None = None) -> ShadowReport:
    """Model `name`'s shadow version against the version served, as GET /model/shadow."""
    return shadow_report(service_state(request).require(name, version))


add_model_route(router, "/models/{name}/shadow", model_shadow, "GET", responses=_ERRORS)
