"""Request bodies: real rows of scikit-learn's diabetes data, every feature present."""

from __future__ import annotations

import json
from pathlib import Path

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def diabetes_rows() -> list[dict[str, float]]:
    """The 442 rows of the diabetes features (scikit-learn's scaled version, as trained on)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    names = list(data.feature_names)
    if tuple(names) != FEATURES:
        raise RuntimeError(f"unexpected diabetes features: {names}")
    return [dict(zip(names, map(float, row), strict=True)) for row in data.data]


def body(rows: list[dict[str, float]], n: int) -> bytes:
    """`{"instances": [...]}` with `n` rows, cycling through `rows`."""
    instances = [rows[i % len(rows)] for i in range(n)]
    return json.dumps({"instances": instances}, separators=(",", ":")).encode()


def write_bodies(directory: Path, sizes: list[int]) -> dict[int, Path]:
    """Write one body file per row count into `directory`; returns their paths by size."""
    rows = diabetes_rows()
    paths = {}
    for n in sizes:
        path = directory / f"body-{n}.json"
        path.write_bytes(body(rows, n))
        paths[n] = path
    return paths
