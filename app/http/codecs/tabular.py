"""The table-shaped bodies of POST /predict: pandas' "split" JSON and CSV in, CSV out.

Text cells of numeric features are read by the bundle's cell rule, as training read them."""

from __future__ import annotations

import csv
import io
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

from app.bundle import Decoded, NumericFeature, PreprocessingStats
from app.errors import InvalidInput, MalformedBody, ServiceError, validation_failure
from app.http.codecs.json_body import validated_rows
from app.http.codecs.text_cells import text_number

CSV_TYPES = ("text/csv", "application/csv")


def wants_csv(accept: str) -> bool:
    return any(t in accept for t in CSV_TYPES)


def split_rows(
    raw: bytes, stats: PreprocessingStats, request_model: type[BaseModel], failure: ServiceError
) -> list[Any]:
    """Rows from `{"columns": [...], "data": [[...], ...]}`; any other body raises `failure`.
    A string given for a numeric feature is a text cell, read as a CSV cell is.

    Called only after the `instances` shape failed, so the common case pays nothing for it.
    """
    try:
        body = pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError:
        raise failure from None
    if not (isinstance(body, dict) and set(body) == {"columns", "data"}):
        raise failure from None
    columns, data = body["columns"], body["data"]
    if not (isinstance(columns, list) and isinstance(data, list)):
        raise InvalidInput("'columns' and 'data' must be lists")
    _unique_columns(columns, "columns")
    numeric = _numeric_features(stats)
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidInput(f"data[{i}] must be a list of {len(columns)} values, one per column")
        rows.append(
            {
                name: text_number(cell, f"data[{i}].{name}")
                if name in numeric and isinstance(cell, str)
                else cell
                for name, cell in zip(columns, row, strict=True)
            }
        )
    return _validated(rows, request_model)


def csv_rows(raw: bytes, stats: PreprocessingStats, request_model: type[BaseModel]) -> list[Any]:
    """Rows from CSV text with a header row. Cells of numeric features are read by the cell
    rule; categorical cells are taken as written."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedBody("CSV body must be UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise MalformedBody("CSV body is empty; expected a header row and data rows")
    header = [h.strip() for h in header]
    _unique_columns(header, "the CSV header")
    numeric = _numeric_features(stats)
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise InvalidInput(
                f"CSV line {line} has {len(cells)} cells; the header has {len(header)}"
            )
        rows.append(
            {
                name: text_number(cell, f"CSV line {line}, column {name}")
                if name in numeric
                else cell
                for name, cell in zip(header, cells, strict=True)
            }
        )
    return _validated(rows, request_model)


def csv_answer(decoded: Decoded, classes: list[Any] | None) -> str:
    """One line per row: the prediction, then each class's probability for a classifier."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if decoded.probabilities is None:
        writer.writerow(["prediction"])
        writer.writerows([v] for v in decoded.values)
    else:
        writer.writerow(["prediction", *(f"probability_{c}" for c in classes or [])])
        for label, p in zip(decoded.values, decoded.probabilities.tolist(), strict=True):
            writer.writerow([label, *p])
    return out.getvalue()


def _numeric_features(stats: PreprocessingStats) -> set[str]:
    return {f.name for f in stats.features if isinstance(f, NumericFeature)}


def _unique_columns(names: list[Any], where: str) -> None:
    seen: set[Any] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{where} names column {name!r} more than once")
        if isinstance(name, str | int | float | bool) or name is None:
            seen.add(name)


def _validated(rows: list[dict[str, Any]], request_model: type[BaseModel]) -> list[Any]:
    try:
        return validated_rows(request_model, rows)
    except ValidationError as exc:
        raise validation_failure(exc.errors()) from None
