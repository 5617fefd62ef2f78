"""The native prediction API: POST /predict and GET /model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.bundle import Metadata
from app.predictor import Predictor
from app.routes.body import documented_body, json_body
from app.schemas import ErrorResponse, PredictRequest, PredictResponse
from app.state import current_predictor

router = APIRouter(tags=["prediction"])

CurrentPredictor = Annotated[Predictor, Depends(current_predictor)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON."},
    413: {"model": ErrorResponse, "description": "More rows than MAX_ROWS."},
    422: {"model": ErrorResponse, "description": "A row is malformed; `details` says where."},
    503: {"model": ErrorResponse, "description": "No model is ready."},
}


@router.post("/predict", responses=_ERRORS, openapi_extra=documented_body(PredictRequest))
def predict(
    body: Annotated[PredictRequest, Depends(json_body(PredictRequest))],
    predictor: CurrentPredictor,
) -> PredictResponse:
    """Predict one value per row, in the target's real units."""
    predictions = predictor.predict_rows(body.instances)
    return PredictResponse(
        predictions=predictions.tolist(),
        model_name=predictor.name,
        model_version=predictor.version,
    )


@router.get("/model", responses={503: _ERRORS[503]})
def model_metadata(predictor: CurrentPredictor) -> Metadata:
    """The loaded bundle's metadata: name, version, features, test metrics, provenance."""
    return predictor.metadata
