"""TF Serving's REST bodies: the requests as declared, the rows in them, and the answers.

Rows come as `instances` (objects of named features, or lists in the bundle's feature order)
or `inputs` (columns by feature name); answers are `predictions` or `outputs` to match.
`:regress` and `:classify` take `examples`, with `context` features merged into each.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.bundle import Decoded, NumericFeature
from app.errors import BadRequest, validation_failure
from app.http.codecs.json_body import validated_rows
from app.http.responses import as_bad_request
from app.model.predictor import Predictor
from app.model.state import ServedModel

SIGNATURE = "serving_default"
METHOD_NAME = "tensorflow/serving/predict"


class PredictBody(BaseModel):
    """TF Serving's predict request: rows (`instances`) or columns (`inputs`), not both."""

    model_config = ConfigDict(extra="allow")
    signature_name: str | None = None
    instances: list[Any] | None = Field(None, description="Rows: objects by feature, or lists")
    inputs: dict[str, list[Any]] | None = Field(
        None, description="Columns: a list of values per feature"
    )


class ExamplesBody(BaseModel):
    """TF Serving's regress and classify request: examples, with optional shared context."""

    model_config = ConfigDict(extra="allow")
    signature_name: str | None = None
    examples: list[dict[str, Any]]
    context: dict[str, Any] | None = Field(None, description="Features shared by every example")


def predict_rows(served: ServedModel, body: PredictBody) -> tuple[str, list[Any]]:
    """(`instances` or `inputs`, whichever the request used; its rows, validated)."""
    if (body.instances is None) == (body.inputs is None):
        raise BadRequest("request must have exactly one of 'instances' and 'inputs'")
    if body.inputs is not None:
        if not body.inputs:
            raise BadRequest("'inputs' must be an object with one list per feature")
        if len({len(v) for v in body.inputs.values()}) != 1:
            raise BadRequest("every column in 'inputs' must be a list, all of the same length")
        given = body.inputs
        table = [
            dict(zip(given, cells, strict=True)) for cells in zip(*given.values(), strict=True)
        ]
        return "inputs", _validated(served, table, "inputs")
    features = served.predictor.features
    named = [_named(row, i, features) for i, row in enumerate(body.instances or [])]
    return "instances", _validated(served, named, "instances")


def example_rows(served: ServedModel, body: ExamplesBody) -> list[Any]:
    """The examples, each with the `context` features merged in, validated."""
    context = body.context or {}
    examples = [{**context, **e} for e in body.examples] if context else body.examples
    return _validated(served, examples, "examples")


def predict_answer(decoded: Decoded, key: str) -> dict[str, Any]:
    """`predictions` (row form) or `outputs` (column form), as the request was shaped."""
    columnar = key == "inputs"
    if decoded.probabilities is None:
        return {"outputs" if columnar else "predictions": decoded.values}
    if columnar:
        return {"outputs": {"label": decoded.values, "probabilities": decoded.probabilities}}
    rows = [
        {"label": label, "probabilities": p}
        for label, p in zip(decoded.values, decoded.probabilities.tolist(), strict=True)
    ]
    return {"predictions": rows}


def signature_tensors(predictor: Predictor, kind: str) -> dict[str, tuple[str, int | None]]:
    """The `serving_default` signature's `inputs` (one per feature) or `outputs`: by name, the
    dtype and the width of a second dimension (None for a [-1] tensor). Outputs are doubles,
    the precision the answers carry."""
    if kind == "inputs":
        return {
            f.name: ("DT_FLOAT" if isinstance(f, NumericFeature) else "DT_STRING", None)
            for f in predictor.stats.features
        }
    classes = predictor.metadata.classes
    if classes is None:
        return {"predictions": ("DT_DOUBLE", None)}
    return {"label": ("DT_STRING", None), "probabilities": ("DT_DOUBLE", len(classes))}


def classify_results(decoded: Decoded, classes: list[Any]) -> list[list[list[Any]]]:
    """Per example, `[label, score]` for every class, labels as text."""
    labels = [str(c) for c in classes]
    probabilities = [] if decoded.probabilities is None else decoded.probabilities.tolist()
    return [[[label, p] for label, p in zip(labels, row, strict=True)] for row in probabilities]


def _validated(served: ServedModel, table: list[Any], key: str) -> list[Any]:
    try:
        return validated_rows(served.request_model, table)
    except ValidationError as exc:
        raise as_bad_request(validation_failure(exc.errors()), key) from None


def _named(row: object, index: int, features: list[str]) -> object:
    """A row given as a list of values, in the bundle's feature order -> named features."""
    if not isinstance(row, list):
        return row
    if len(row) != len(features):
        raise BadRequest(
            f"instance {index} has {len(row)} values; the model takes {len(features)} "
            f"({', '.join(features)})"
        )
    return dict(zip(features, row, strict=True))
