"""The native prediction API: POST /predict, GET /model and GET /model/report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.bundle import MODEL_CARD_FILE, REPORT_DIR, Decoded
from app.errors import InvalidInput, NotFound
from app.http.codecs import tabular
from app.http.codecs.json_body import documented_body, parse_json, reject_duplicate_features
from app.http.dependencies import current_predictor, live_cost, service_state
from app.http.responses import json_response
from app.http.schemas import (
    ErrorResponse,
    ModelDescription,
    PredictRequest,
    PredictResponse,
    error_responses,
)
from app.model.predictor import Predictor

router = APIRouter(tags=["prediction"])

CurrentPredictor = Annotated[Predictor, Depends(current_predictor)]

_ERRORS = error_responses(400, 413, 422, 503)


async def predict(request: Request) -> Response:
    """Predict each row: a value in the target's units, or a class with its probabilities.

    Rows come as `{"instances": [...]}`, as pandas' split JSON `{"columns", "data"}`, or as
    CSV with a header (Content-Type text/csv); `Accept: text/csv` answers CSV.
    """
    served = service_state(request).require()
    raw = await request.body()
    if tabular.wants_csv(request.headers.get("content-type", "")):
        rows = tabular.csv_rows(raw, served.predictor.stats, served.request_model)
    else:
        try:
            rows = parse_json(raw, served.request_model).instances  # type: ignore[attr-defined]
        except InvalidInput as failure:
            # A repeated key explains a failure better than what it did to the row, and the
            # body may be pandas' split JSON instead.
            reject_duplicate_features(raw)
            rows = tabular.split_rows(raw, served.predictor.stats, served.request_model, failure)
        else:
            reject_duplicate_features(raw, len(rows) * len(served.predictor.features))
    decoded = await served.inference.predict_rows(rows)
    if tabular.wants_csv(request.headers.get("accept", "")):
        answer = tabular.csv_answer(decoded, served.predictor.metadata.classes)
        return Response(answer, media_type="text/csv")
    return json_response(prediction_body(decoded, served.predictor))


router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    response_model=PredictResponse,
    responses=_ERRORS,
    openapi_extra=documented_body(PredictRequest),
)


PREDICT_ROUTE = Route("/predict", predict, methods=["POST"])
"""POST /predict as ServiceMiddleware answers it (`endpoint`); the FastAPI route above is
what /docs and /openapi.json describe."""


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /predict as a plain ASGI endpoint, for `ServiceApp` to reach ahead of FastAPI's
    middleware, exception handling and routing: together they cost more than the bare
    prediction (about 13 us a request), and `predict` needs none of them. Its errors go up to
    ServiceMiddleware, which renders them as the app's handler would."""
    scope["route"] = PREDICT_ROUTE  # the template metrics and logs are labelled with
    response = await predict(Request(scope, receive))
    await response(scope, receive, send)


def prediction_body(decoded: Decoded, predictor: Predictor) -> dict[str, Any]:
    """The PredictResponse fields, with numpy arrays left for orjson to write directly."""
    if decoded.probabilities is None:
        body: dict[str, Any] = {"predictions": decoded.values}
    else:
        body = {
            "predictions": decoded.values,
            "probabilities": decoded.probabilities,
            "classes": predictor.metadata.classes,
        }
    body["model_name"] = predictor.name
    body["model_version"] = predictor.version
    return body


@router.get("/model", responses=error_responses(503))
def model_metadata(request: Request, predictor: CurrentPredictor) -> ModelDescription:
    """The served bundle's metadata: features, test metrics against baselines, feature
    importance, provenance, what the model cost to train and store and what a prediction costs
    in-process (`cost`), and what predictions cost in this service now (`live_cost`).

    `name` and `version` are the directories served from; `trained_as` is what training wrote."""
    live = live_cost(request).figures()
    return ModelDescription.model_validate({**dict(predictor.metadata), "live_cost": live})


@router.get(
    "/model/report",
    response_class=HTMLResponse,
    responses={
        **error_responses(503),
        404: {"model": ErrorResponse, "description": "The bundle has no model card."},
    },
)
def model_report(predictor: CurrentPredictor) -> HTMLResponse:
    """The bundle's model card: data summary, metrics against baselines, and plots."""
    card = predictor.path / REPORT_DIR / MODEL_CARD_FILE
    try:
        return HTMLResponse(card.read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = f"model {predictor.name} version {predictor.version}"
        raise NotFound(f"{where} has no model card") from None
