"""GET /model/drift and /models/{name}/drift: how far the rows a model version predicts have
moved from its training data (see `app.model.drift` for the statistics and thresholds)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.http.dependencies import service_state
from app.http.schemas import DriftReport, error_responses
from app.http.versioned_routes import add_model_route
from app.model.state import ServedModel

router = APIRouter(tags=["drift"])

_ERRORS = error_responses(404, 503)


def drift_report(served: ServedModel) -> DriftReport:
    predictor, monitor = served.predictor, served.inference.drift
    names = {"model_name": predictor.name, "model_version": predictor.version}
    if monitor is None:
        why = (
            "the bundle has no reference distributions (it was trained before training wrote "
            "them); retrain to watch drift"
            if predictor.reference is None
            else "drift is off (DRIFT=off)"
        )
        return DriftReport(
            **names,
            status="unavailable",
            message=why,
            window_rows=None,
            rows=0,
            features={},
            output=None,
        )
    return DriftReport.model_validate({**names, **monitor.report()})


@router.get("/model/drift", responses=_ERRORS)
async def default_model_drift(request: Request) -> DriftReport:
    """Live drift of the default model: per feature and for the output, the population
    stability index, the Jensen-Shannon distance, missing and out-of-vocabulary rates, and a
    status, over the last DRIFT_WINDOW_ROWS rows predicted."""
    return drift_report(service_state(request).require())


async def model_drift(request: Request, name: str, version: int | None = None) -> DriftReport:
    """Live drift of model `name`, as GET /model/drift."""
    return drift_report(service_state(request).require(name, version))


add_model_route(router, "/models/{name}/drift", model_drift, "GET", responses=_ERRORS)
