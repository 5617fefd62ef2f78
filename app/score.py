"""`python -m app.score INPUT OUTPUT`: score a large CSV or Parquet file with a bundle, offline.

The rows go through the same loading checks, transform and runtime as the service, a chunk at
a time, so memory stays bounded and the predictions equal what POST /predict answers for the
same rows: every cell is read by the bundle's cell rule, as training and the CSV route read
it. Needs pandas and pyarrow (the `train` extra); the serving image has neither.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from app.bundle import BundleError, CategoricalFeature, Decoded, NotANumber, read_numbers
from app.model.loading import load_predictor
from app.model.predictor import Predictor
from app.settings import RuntimeName, Settings

DEFAULT_CHUNK_ROWS = 50_000


class ScoreError(Exception):
    """Input the scorer cannot take; the message says what and where."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app.score", description=__doc__.split("\n")[0])
    p.add_argument("input", type=Path, help="a .csv or .parquet file with a column per feature")
    p.add_argument("output", type=Path, help="where to write: .csv or .parquet")
    p.add_argument("--model-dir", type=Path, default=Path("models"))
    p.add_argument("--model-name", default="default")
    p.add_argument("--model-version", type=int, default=None, help="default: the newest")
    p.add_argument("--id-column", default=None, help="an input column copied to the output")
    p.add_argument("--runtime", default="auto", choices=["auto", "savedmodel", "litert"])
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per chunk")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runtime: RuntimeName = args.runtime
    settings = Settings(
        model_dir=args.model_dir,
        model_name=args.model_name,
        model_version=args.model_version,
        model_runtime=runtime,
        max_rows=args.chunk_rows,
    )
    started = time.perf_counter()
    try:
        predictor = load_predictor(settings)
        rows = score(predictor, args.input, args.output, args.id_column, args.chunk_rows)
    except (BundleError, ScoreError, OSError, pa.ArrowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(
        f"scored {rows:,} rows with {predictor.name} version {predictor.version} "
        f"({predictor.runtime.name}) in {seconds:.1f} s: {rows / seconds:,.0f} rows/s",
        file=sys.stderr,
    )
    print(args.output)
    return 0


def score(
    predictor: Predictor, source: Path, target: Path, id_column: str | None, chunk_rows: int
) -> int:
    """Predict every row of `source` into `target`, chunk by chunk; the number of rows."""
    writer = _Writer(target)
    total = 0
    try:
        with tqdm(unit=" rows", unit_scale=True, file=sys.stderr, total=_rows_in(source)) as bar:
            for offset, chunk in _chunks(source, chunk_rows):
                columns = _feature_columns(predictor, chunk, offset)
                out = _answer(predictor.predict_columns(columns), predictor.metadata.classes)
                if id_column is not None:
                    if id_column not in chunk:
                        raise ScoreError(f"{source}: no column {id_column!r} (--id-column)")
                    out.insert(0, id_column, chunk[id_column].to_numpy())
                writer.write(out)
                total += len(chunk)
                bar.update(len(chunk))
    finally:
        writer.close()
    return total


def _rows_in(source: Path) -> int | None:
    return pq.ParquetFile(source).metadata.num_rows if _is_parquet(source) else None


def _chunks(source: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """(index of the chunk's first row, the chunk); CSV cells as text, as the service reads
    them, Parquet columns with their types."""
    offset = 0
    if _is_parquet(source):
        for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows):
            yield offset, batch.to_pandas()
            offset += batch.num_rows
        return
    reader = pd.read_csv(source, dtype=str, keep_default_na=False, chunksize=chunk_rows)
    with reader:
        for frame in reader:
            frame.columns = [str(c).strip() for c in frame.columns]
            yield offset, frame
            offset += len(frame)


def _feature_columns(
    predictor: Predictor, chunk: pd.DataFrame, offset: int
) -> dict[str, np.ndarray | list[object]]:
    missing = [f for f in predictor.features if f not in chunk]
    if missing:
        raise ScoreError(f"the input has no column for the features {', '.join(missing)}")
    columns: dict[str, np.ndarray | list[object]] = {}
    for feature in predictor.stats.features:
        values = chunk[feature.name]
        if isinstance(feature, CategoricalFeature):
            # As /predict takes them: the bundle's category_key reads empty and NA-like cells
            # (and Parquet's nulls) as missing.
            columns[feature.name] = values.tolist()
        else:
            columns[feature.name] = _numbers(values, feature.name, offset)
    return columns


def _numbers(values: pd.Series, name: str, offset: int) -> np.ndarray:
    """A numeric column as float64 with NaN for missing, read by the bundle's cell rule (an
    infinite cell is kept, and filled by the transform as training fills it); a cell that is
    not a number stops the run, naming its row."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return read_numbers(values.to_numpy(dtype=object, na_value=np.nan))
    except NotANumber as exc:
        row = offset + (exc.index or 0) + 1
        raise ScoreError(f"row {row}, column {name}: {exc.cell!r} is not a number") from None


def _answer(decoded: Decoded, classes: list[Any] | None) -> pd.DataFrame:
    """The columns of /predict's CSV answer: `prediction`, then `probability_<class>`."""
    if decoded.probabilities is None:
        return pd.DataFrame({"prediction": np.asarray(decoded.values, dtype=np.float64)})
    out = pd.DataFrame({"prediction": decoded.values})
    for i, label in enumerate(classes or []):
        out[f"probability_{label}"] = decoded.probabilities[:, i]
    return out


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


class _Writer:
    """Appends chunks to a CSV or Parquet file, opened on the first chunk."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._parquet: pq.ParquetWriter | None = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        if _is_parquet(self.target):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.target, table.schema)
            self._parquet.write_table(table)
        else:
            frame.to_csv(
                self.target,
                mode="a" if self._started else "w",
                header=not self._started,
                index=False,
            )
        self._started = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


if __name__ == "__main__":
    sys.exit(main())
