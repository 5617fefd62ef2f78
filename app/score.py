"""`python -m app.score INPUT OUTPUT`: score a large CSV or Parquet file with a bundle, offline.

The rows go through the same loading checks, transform and runtime as the service, a chunk at
a time, so memory stays bounded and the predictions equal what POST /predict answers for the
same rows: every cell is read by the bundle's cell rule, as training and the CSV route read
it. Needs pandas and pyarrow (the `train` extra); the serving image has neither.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from app.bundle import BundleError
from app.scoring import DEFAULT_CHUNK_ROWS, ScoreError, Scorer
from app.settings import RuntimeName

ENGINES = ("local", "spark", "ray")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app.score", description=__doc__.split("\n")[0])
    p.add_argument(
        "input",
        help="a .csv or .parquet file with a column per feature (spark, ray: also a directory "
        "or a glob of them)",
    )
    p.add_argument(
        "output", type=Path, help="where to write: .csv or .parquet (spark, ray: a directory)"
    )
    p.add_argument("--model-dir", type=Path, default=Path("models"))
    p.add_argument("--model-name", default="default")
    p.add_argument("--model-version", type=int, default=None, help="default: the newest")
    p.add_argument("--id-column", default=None, help="an input column copied to the output")
    p.add_argument("--runtime", default="auto", choices=["auto", "savedmodel", "litert"])
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per chunk")
    p.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local: this process; spark: PySpark's mapInPandas; ray: Ray Data's map_batches "
        "(each needs its extra) (default: %(default)s)",
    )
    p.add_argument(
        "--spark-master",
        default="local[*]",
        help="--engine spark: the master URL (default: %(default)s)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runtime: RuntimeName = args.runtime
    scorer = Scorer(
        args.model_dir,
        args.model_name,
        model_version=args.model_version,
        runtime=runtime,
        id_column=args.id_column,
        chunk_rows=args.chunk_rows,
    )
    started = time.perf_counter()
    try:
        predictor = scorer.predictor
        if args.engine == "local":
            rows = score(scorer, Path(args.input), args.output)
        else:
            engine = importlib.import_module(f"app.engines.{args.engine}")
            rows = engine.score(scorer, args.input, args.output, args)
    except ImportError as exc:
        print(f"error: --engine {args.engine} needs {exc.name}: install the project's "
              f"`{args.engine}` extra", file=sys.stderr)  # fmt: skip
        return 2
    except (BundleError, ScoreError, OSError, pa.ArrowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(
        f"scored {rows:,} rows with {predictor.name} version {predictor.version} "
        f"({predictor.runtime.name}, engine {args.engine}) in {seconds:.1f} s: "
        f"{rows / seconds:,.0f} rows/s",
        file=sys.stderr,
    )
    print(args.output)
    return 0


def score(scorer: Scorer, source: Path, target: Path) -> int:
    """Predict every row of `source` into `target`, chunk by chunk; the number of rows."""
    writer = _Writer(target)
    total = 0
    try:
        with tqdm(unit=" rows", unit_scale=True, file=sys.stderr, total=_rows_in(source)) as bar:
            for offset, chunk in _chunks(source, scorer.chunk_rows):
                writer.write(scorer.score(chunk, first_row=offset + 1))
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
