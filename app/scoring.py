"""The Python scoring API: a bundle version scoring pandas DataFrames of raw cells, the object
`python -m app.score` and the Spark and Ray engines call.

    scorer = Scorer("models", "churn")            # nothing loaded yet: it pickles small
    scored = scorer.score(frame)                  # loads the bundle once in this process
    df.mapInPandas(scorer.score_batches, scorer.spark_schema(df.schema))   # PySpark
    ds.map_batches(Scorer, fn_constructor_kwargs={...}, batch_format="pandas")  # Ray Data

Every cell is read by the bundle's cell rule, as POST /predict and training read it, and the
rows go through the service's own transform and runtime (LiteRT by default, no TensorFlow), so
the predictions equal what the service answers for the same rows. A cell that is not a number
stops the job with a `ScoreError` naming its row (or its id) and column: bad rows are never
skipped silently, in any engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.bundle import CategoricalFeature, Decoded, NotANumber, read_numbers
from app.model.loading import load_predictor
from app.model.predictor import Predictor
from app.settings import RuntimeName, Settings

DEFAULT_CHUNK_ROWS = 50_000
_PANDAS = {"double": "float64", "long": "int64", "boolean": "bool", "string": "object"}


class ScoreError(Exception):
    """Input the scorer cannot take; the message says what and where."""


# One loaded bundle per process and bundle version, whatever number of Scorer objects (Spark
# unpickles one per task, Ray one per actor).
_LOADED: dict[tuple[str, str, int | None, str, int], Predictor] = {}
_LOADING = threading.Lock()


class Scorer:
    """Scores DataFrames with one version of one model (the newest when `model_version` is
    None), each row's `id_column` carried to the output when given."""

    def __init__(
        self,
        model_dir: str | Path = "models",
        model_name: str = "default",
        *,
        model_version: int | None = None,
        runtime: RuntimeName = "litert",
        id_column: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.model_dir = str(model_dir)
        self.model_name = model_name
        self.model_version = model_version
        self.runtime: RuntimeName = runtime
        self.id_column = id_column
        self.chunk_rows = chunk_rows

    def __getstate__(self) -> dict[str, Any]:
        # Only where the bundle is: a worker loads it itself, once.
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @property
    def predictor(self) -> Predictor:
        key = (self.model_dir, self.model_name, self.model_version, self.runtime, self.chunk_rows)
        with _LOADING:
            if key not in _LOADED:
                settings = Settings(
                    model_dir=Path(self.model_dir),
                    model_name=self.model_name,
                    model_version=self.model_version,
                    model_runtime=self.runtime,
                    max_rows=self.chunk_rows,
                )
                _LOADED[key] = load_predictor(settings)
            return _LOADED[key]

    def score(self, frame: pd.DataFrame, first_row: int | None = None) -> pd.DataFrame:
        """`/predict`'s CSV answer for `frame`'s rows: `prediction`, then `probability_<class>`
        for a classifier, after the id column when there is one. `first_row`, the 1-based
        number of `frame`'s first row in its file, lets an error name the row."""
        predictor = self.predictor
        if self.id_column is not None and self.id_column not in frame:
            raise ScoreError(f"no column {self.id_column!r} (--id-column)")
        outputs = []
        for start in range(0, len(frame), self.chunk_rows):
            chunk = frame.iloc[start : start + self.chunk_rows]
            columns = self._feature_columns(chunk, None if first_row is None else first_row + start)
            outputs.append(_answer(predictor.predict_columns(columns), predictor.metadata.classes))
        out = pd.concat(outputs, ignore_index=True) if outputs else self._empty()
        if self.id_column is not None:
            out.insert(0, self.id_column, frame[self.id_column].to_numpy())
        return out

    __call__ = score  # Ray Data's map_batches calls the object

    def score_batches(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """`score` over an iterator of frames, as PySpark's `mapInPandas` passes them."""
        for frame in frames:
            yield self.score(frame)

    def output_columns(self) -> list[tuple[str, str]]:
        """(name, kind) of the columns `score` writes after the id column: kind `double`,
        `string`, `long` or `boolean` (a classifier's labels take their own type)."""
        classes = self.predictor.metadata.classes
        if classes is None:
            return [("prediction", "double")]
        kinds = {type(c) for c in classes}
        kind = {bool: "boolean", int: "long", float: "double"}.get(next(iter(kinds)), "string")
        label = kind if len(kinds) == 1 else "string"
        return [("prediction", label), *((f"probability_{c}", "double") for c in classes)]

    def _empty(self) -> pd.DataFrame:
        """No rows, in the columns and types `score` writes (Spark and Ray may hand over an
        empty batch)."""
        return pd.DataFrame(
            {name: pd.Series(dtype=_PANDAS[kind]) for name, kind in self.output_columns()}
        )

    def _feature_columns(
        self, chunk: pd.DataFrame, first_row: int | None
    ) -> dict[str, np.ndarray | list[object]]:
        predictor = self.predictor
        missing = [f for f in predictor.features if f not in chunk]
        if missing:
            raise ScoreError(f"the input has no column for the features {', '.join(missing)}")
        columns: dict[str, np.ndarray | list[object]] = {}
        for feature in predictor.stats.features:
            values = chunk[feature.name]
            if isinstance(feature, CategoricalFeature):
                # As /predict takes them: the bundle's category_key reads empty and NA-like
                # cells (and Parquet's nulls) as missing.
                columns[feature.name] = values.tolist()
            else:
                columns[feature.name] = self._numbers(chunk, feature.name, first_row)
        return columns

    def _numbers(self, chunk: pd.DataFrame, name: str, first_row: int | None) -> np.ndarray:
        """A numeric column as float64 with NaN for missing, read by the bundle's cell rule (an
        infinite cell is kept, and filled by the transform as training fills it)."""
        values = chunk[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        try:
            return read_numbers(values.to_numpy(dtype=object, na_value=np.nan))
        except NotANumber as exc:
            index = exc.index or 0
            if first_row is not None:
                where = f"row {first_row + index}"
            elif self.id_column is not None:
                where = f"the row whose {self.id_column} is {chunk[self.id_column].iloc[index]!r}"
            else:
                where = "a row"
            raise ScoreError(f"{where}, column {name}: {exc.cell!r} is not a number") from None


def _answer(decoded: Decoded, classes: list[Any] | None) -> pd.DataFrame:
    """The columns of /predict's CSV answer: `prediction`, then `probability_<class>`."""
    if decoded.probabilities is None:
        return pd.DataFrame({"prediction": np.asarray(decoded.values, dtype=np.float64)})
    out = pd.DataFrame({"prediction": decoded.values})
    for i, label in enumerate(classes or []):
        out[f"probability_{label}"] = decoded.probabilities[:, i]
    return out
