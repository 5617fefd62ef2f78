"""Text cells of numeric features in a request body, read by the bundle's cell rule."""

from __future__ import annotations

import math

from app.bundle import NotANumber, read_number
from app.errors import InvalidInput, shown


def text_number(cell: str, where: str) -> float | None:
    """The number in a text cell; None when the rule reads it as missing or infinite, which
    the transform fills alike (and which JSON rows cannot carry). 422 naming `where` when the
    cell is not a number."""
    try:
        number = read_number(cell)
    except NotANumber:
        raise InvalidInput(
            f"{where}: {shown(cell)!r} is not a number",
            [{"loc": where, "message": "not a number"}],
        ) from None
    return number if math.isfinite(number) else None
