"""The request body of the FastAPI reference servers: the same shape as the service's."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Row(BaseModel):
    """One row of the diabetes data: every feature present, a number or null."""

    model_config = ConfigDict(extra="forbid")

    age: float | None
    sex: float | None
    bmi: float | None
    bp: float | None
    s1: float | None
    s2: float | None
    s3: float | None
    s4: float | None
    s5: float | None
    s6: float | None


class PredictRequest(BaseModel):
    """Rows to predict."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Row]


FEATURES = list(Row.model_fields)
"""Feature names in the model's input order."""
