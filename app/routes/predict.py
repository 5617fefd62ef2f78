"""The native prediction API: POST /predict, GET /model and GET /model/report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.bundle import MODEL_CARD_FILE, REPORT_DIR, Metadata
from app.errors import ModelNotReady, NotFound
from app.predictor import Predictor
from app.routes.body import documented_body, parse_json
from app.schemas import (
    ClassificationResponse,
    ErrorResponse,
    PredictRequest,
    PredictResponse,
    RegressionResponse,
)
from app.state import current_predictor, service_state

router = APIRouter(tags=["prediction"])

CurrentPredictor = Annotated[Predictor, Depends(current_predictor)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON."},
    413: {"model": ErrorResponse, "description": "More rows than MAX_ROWS."},
    422: {"model": ErrorResponse, "description": "A row is malformed; `details` says where."},
    503: {"model": ErrorResponse, "description": "No model is ready."},
}


async def instances(request: Request, _: CurrentPredictor) -> list[dict[str, Any]]:
    """The request's rows, validated against the loaded model's own features."""
    request_model = service_state(request).request_model
    if request_model is None:
        raise ModelNotReady("model is not loaded yet or the service is shutting down")
    body = parse_json(await request.body(), request_model)
    rows: list[dict[str, Any]] = body.instances  # type: ignore[attr-defined]
    return rows


@router.post("/predict", responses=_ERRORS, openapi_extra=documented_body(PredictRequest))
def predict(
    rows: Annotated[list[dict[str, Any]], Depends(instances)], predictor: CurrentPredictor
) -> PredictResponse:
    """Predict each row: a value in the target's units, or a class with its probabilities."""
    decoded = predictor.predict_rows(rows)
    if decoded.probabilities is None:
        return RegressionResponse(
            predictions=decoded.values,
            model_name=predictor.name,
            model_version=predictor.version,
        )
    return ClassificationResponse(
        predictions=decoded.values,
        probabilities=decoded.probabilities.tolist(),
        classes=predictor.metadata.classes or [],
        model_name=predictor.name,
        model_version=predictor.version,
    )


@router.get("/model", responses={503: _ERRORS[503]})
def model_metadata(predictor: CurrentPredictor) -> Metadata:
    """The loaded bundle's metadata: features, test metrics against baselines, provenance."""
    return predictor.metadata


@router.get(
    "/model/report",
    response_class=HTMLResponse,
    responses={404: {"model": ErrorResponse}, 503: _ERRORS[503]},
)
def model_report(predictor: CurrentPredictor) -> HTMLResponse:
    """The bundle's model card: data summary, metrics against baselines, and plots."""
    card = predictor.path / REPORT_DIR / MODEL_CARD_FILE
    try:
        return HTMLResponse(card.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(
            f"model {predictor.name} version {predictor.version} has no model card"
        ) from None
