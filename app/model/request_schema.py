"""The request schema of one loaded model: every feature required, each with its value type."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
    with_config,
)
from typing_extensions import TypedDict

from app.bundle import NumericFeature, PreprocessingStats

# Strict: "12" or true must not pass as a number silently; ints are still accepted.
NumberValue = Annotated[float, Field(strict=True)] | None
CategoryValue = StrictBool | StrictInt | StrictFloat | StrictStr | None


def request_model_for(stats: PreprocessingStats) -> type[BaseModel]:
    """The PredictRequest of one model: every feature required, with its own value type.

    pydantic then reports missing, unknown and mistyped features with their row, in one pass
    over the raw JSON.
    """
    fields: dict[str, Any] = {
        f.name: NumberValue if isinstance(f, NumericFeature) else CategoryValue
        for f in stats.features
    }
    # Finite numbers only: JSON has no NaN or infinity (null is how a value goes missing), and
    # a number too large for a float64 would otherwise arrive as infinity.
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    row = with_config(config)(TypedDict("Instance", fields))  # type: ignore[operator]
    return create_model(
        "PredictRequest",
        __config__=config,
        instances=(list[row], Field(min_length=1)),  # type: ignore[valid-type]
    )
