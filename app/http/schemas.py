"""Request and response bodies of the native API, as they appear in /docs and /openapi.json."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.bundle import Label, ServedMetadata
from app.model.request_schema import CategoryValue
from app.ops.live_cost import LiveCostFigures

# No null in the example: FastAPI drops nulls from /openapi.json, which would leave it invalid.
_EXAMPLE_ROW: dict[str, JsonValue] = {
    "age": 0.0381,
    "sex": 0.0507,
    "bmi": 0.0617,
    "bp": 0.0219,
    "s1": -0.0442,
    "s2": -0.0348,
    "s3": -0.0434,
    "s4": -0.0026,
    "s5": 0.0199,
    "s6": -0.0177,
}


class PredictRequest(BaseModel):
    """Rows to predict, each an object mapping every feature name to its value or null.

    Numeric features take numbers; categorical ones take strings, numbers or booleans, and a
    category the model has not seen goes to its out-of-vocabulary slot. The loaded model's
    own feature list is at GET /model.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"instances": [_EXAMPLE_ROW]}]}
    )

    instances: list[dict[str, CategoryValue]] = Field(
        min_length=1,
        description="One object per row; null means missing and is filled as in training.",
    )


class RegressionResponse(BaseModel):
    predictions: list[float] = Field(description="One value per row, in the target's units.")
    model_name: str
    model_version: int


class ClassificationResponse(BaseModel):
    predictions: list[Label] = Field(description="The most probable class of each row.")
    probabilities: list[list[float]] = Field(
        description="Per row, the probability of each class, in the order of `classes`."
    )
    classes: list[Label] = Field(description="The class labels, as they were in the data.")
    model_name: str
    model_version: int


PredictResponse = RegressionResponse | ClassificationResponse


class ModelDescription(ServedMetadata):
    """The served bundle's metadata, with what its predictions cost live."""

    live_cost: LiveCostFigures


class DriftFigures(BaseModel):
    """How far one feature's (or the output's) live distribution is from the training data's."""

    kind: Literal["numeric", "categorical", "regression", "classification"]
    psi: float = Field(description="Population stability index over the bins.")
    js: float = Field(description="Jensen-Shannon distance (base 2, 0 to 1).")
    status: Literal["ok", "warn", "alert"]
    missing_rate: float | None = None
    reference_missing_rate: float | None = None
    out_of_vocabulary_rate: float | None = Field(
        default=None, description="Categorical features: share of rare or unseen categories."
    )
    reference_out_of_vocabulary_rate: float | None = None


class DriftReport(BaseModel):
    """Live drift of one served model version against its training data."""

    model_name: str
    model_version: int
    status: Literal["ok", "warn", "alert", "collecting", "unavailable"] = Field(
        description="The worst feature's or the output's status; `collecting` until "
        "`min_rows` rows are in the window; `unavailable` when drift is off or the bundle "
        "has no reference distributions."
    )
    message: str | None = None
    window_rows: int | None = Field(description="DRIFT_WINDOW_ROWS.")
    rows: int = Field(description="Rows in the window now.")
    min_rows: int | None = None
    features: dict[str, DriftFigures]
    output: DriftFigures | None


class ShadowLatency(BaseModel):
    """The shadow's own calls over the window: each scores the rows gathered, in bulk."""

    calls: int
    p50_seconds: float
    p99_seconds: float
    rows_per_call: float
    microseconds_per_row: float


class ShadowReport(BaseModel):
    """A shadow version of a model against the version served, over the last
    SHADOW_WINDOW_ROWS rows both scored. Answers always come from the served version."""

    model_name: str
    model_version: int = Field(description="The version served (and answering).")
    shadow_version: int
    status: Literal["ok", "unavailable"] = Field(
        description="`unavailable` when the shadow failed to load or does not take the served "
        "version's rows (`error` says why); the served version is unaffected."
    )
    error: str | None = None
    task: Literal["regression", "classification"] | None = None
    window_rows: int | None = Field(default=None, description="SHADOW_WINDOW_ROWS.")
    rows: int = Field(default=0, description="Rows compared since this pair of versions began.")
    dropped_rows: int = Field(
        default=0,
        description="Rows not compared: the queue was full (SHADOW_QUEUE_ROWS), or the shadow "
        "failed or answered a non-finite number.",
    )
    mean_abs: float | None = Field(
        default=None,
        description="Mean absolute difference from the served predictions, in the target's "
        "units; for a classifier, of the probabilities (total variation distance), when both "
        "versions have the same classes.",
    )
    p99_abs: float | None = Field(default=None, description="Its 99th percentile.")
    agreement: float | None = Field(
        default=None, description="Classifiers: share of rows given the same class."
    )
    latency: ShadowLatency | None = None


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    status: str = "ready"
    model_name: str
    model_version: int
    runtime: str
    models: dict[str, int] = Field(description="Every served model and its version.")


class ErrorDetail(BaseModel):
    loc: str = Field(description='Where, as a client writes it: "instances[3].bmi".')
    message: str


class ErrorResponse(BaseModel):
    """The shape of every error the service returns."""

    error: str
    details: list[ErrorDetail] | None = None


_ERROR_MEANINGS = {
    400: "The body is not JSON, or not a request this endpoint takes.",
    404: "No such model, or not at that version.",
    413: "A body larger than MAX_BODY_BYTES, or more rows than MAX_ROWS.",
    422: "A row is malformed; `details` says where.",
    503: "No model is ready.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each in the ErrorResponse shape."""
    return {c: {"model": ErrorResponse, "description": _ERROR_MEANINGS[c]} for c in codes}
