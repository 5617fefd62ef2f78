"""Request and response bodies of the native API, as they appear in /docs and /openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# Strict: "12" or true must not pass as a number silently; ints are still accepted.
FeatureValue = Annotated[float, Field(strict=True)] | None

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
    """Rows to predict, each an object mapping every feature name to a number or null."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"instances": [_EXAMPLE_ROW]}]}
    )

    instances: list[dict[str, FeatureValue]] = Field(
        min_length=1,
        description="One object per row; null means missing and is filled as in training.",
    )


class PredictResponse(BaseModel):
    predictions: list[float] = Field(description="One prediction per row, in the target's units.")
    model_name: str
    model_version: int


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    status: str = "ready"
    model_name: str
    model_version: int


class ErrorDetail(BaseModel):
    loc: str = Field(description='Where, as a client writes it: "instances[3].bmi".')
    message: str


class ErrorResponse(BaseModel):
    """The shape of every error the service returns."""

    error: str
    details: list[ErrorDetail] | None = None
