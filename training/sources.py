"""Data that need not fit in memory: CSV and Parquet shards, read in chunks, split per row.

`--data` may name one file, a directory (every `.csv`, `.parquet` and `.pq` file in it) or a
glob. Each row's split comes from a hash of its shard's file name, its position in that shard
and the seed, so every pass over the data sees the same split, however the files are chunked,
and adding a shard leaves the other rows where they were.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.errors import TrainingError

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
PARQUET_SUFFIXES = (".parquet", ".pq")
CHUNK_ROWS = 65_536
CSV_BLOCK_BYTES = 4 << 20

TRAIN, VALIDATION, TEST = 0, 1, 2
"""Split codes of `split_codes`."""


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame
    """Columns as read: text for CSV, the file's types for Parquet."""
    hashes: np.ndarray
    """One uniform 64-bit hash per row (uint64), from the shard, the row's position and the seed."""
    shard: Path
    start: int
    """Rows of the shard before this chunk."""


def is_sharded(source: str) -> bool:
    """Whether `--data` names a directory or a glob rather than one file."""
    return Path(source).is_dir() or glob.has_magic(source)


def resolve_shards(source: str) -> list[Path]:
    """The data files `source` names, sorted; a TrainingError when there are none."""
    path = Path(source)
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
        where = f"directory {source}"
    elif glob.has_magic(source):
        # glob.glob, not Path.glob: the pattern may be absolute.
        matches = glob.glob(source, recursive=True)  # noqa: PTH207
        shards = sorted(Path(p) for p in matches if Path(p).is_file())
        where = f"pattern {source}"
    else:
        if not path.is_file():
            raise TrainingError(f"data file not found: {source}")
        return [path]
    if not shards:
        suffixes = ", ".join(DATA_SUFFIXES)
        raise TrainingError(f"no data files ({suffixes}) match the {where}")
    if len({p.suffix.lower() in PARQUET_SUFFIXES for p in shards}) > 1:
        raise TrainingError(f"the {where} mixes CSV and Parquet files; use one format")
    return shards


def shards_sha256(shards: list[Path]) -> str:
    """One digest for all shards: their names and contents, in order."""
    digest = hashlib.sha256()
    for path in shards:
        content = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                content.update(block)
        digest.update(f"{path.name}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()


def read_columns(path: Path) -> list[str]:
    """A shard's column names, stripped, without reading its rows."""
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, dtype=str, keep_default_na=False, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise TrainingError(f"data file is empty: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrainingError(f"cannot read data file {path}: {_reason(exc)}") from None
    return [str(name).strip() for name in names]


def check_same_columns(shards: list[Path]) -> list[str]:
    """The shards' shared column names; a TrainingError naming the first shard that differs."""
    first = read_columns(shards[0])
    if len(set(first)) != len(first):
        raise TrainingError(f"{shards[0]} has duplicate column names")
    for path in shards[1:]:
        if (columns := read_columns(path)) != first:
            missing = [c for c in first if c not in columns]
            extra = [c for c in columns if c not in first]
            raise TrainingError(
                f"{path} has other columns than {shards[0].name}: "
                f"missing {missing or 'none'}, extra {extra or 'none'} (same order needed)"
            )
    return first


def read_chunks(
    shards: list[Path], seed: int, chunk_rows: int = CHUNK_ROWS, threads: bool = True
) -> Iterator[Chunk]:
    """Every row of every shard, in order, `chunk_rows` at a time, with its split hash.

    `threads=False` parses CSV on the calling thread only: inside a `tf.data` generator,
    Arrow's reader threads make tearing the pipeline down take seconds per million rows.
    """
    for path in shards:
        key = _shard_key(path, seed)
        start = 0
        for frame in _frames(path, chunk_rows, threads):
            frame.columns = [str(c).strip() for c in frame.columns]
            positions = np.arange(start, start + len(frame), dtype=np.uint64)
            yield Chunk(frame.reset_index(drop=True), _mix(positions ^ key), path, start)
            start += len(frame)


def split_codes(hashes: np.ndarray, test_fraction: float, validation_fraction: float) -> np.ndarray:
    """TRAIN, VALIDATION or TEST per row: `test_fraction` of rows to test, then
    `validation_fraction` of the rest to validation, in expectation."""
    u = (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    codes = np.full(len(hashes), TRAIN, dtype=np.int8)
    codes[u < test_fraction + (1 - test_fraction) * validation_fraction] = VALIDATION
    codes[u < test_fraction] = TEST
    return codes


def sampled(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """About `fraction` of the rows, the same ones on every pass, independently of the split."""
    if fraction >= 1:
        return np.ones(len(hashes), dtype=bool)
    u = (_mix(hashes) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    picked: np.ndarray = u < fraction
    return picked


def pipeline_of(hashes: np.ndarray, pipelines: int) -> np.ndarray:
    """Which of `pipelines` input pipelines (one per worker) reads each row."""
    # The low bits: independent of the high ones `split_codes` uses.
    return (hashes & np.uint64(0xFFFFFFFF)) % np.uint64(pipelines)


def _frames(path: Path, chunk_rows: int, threads: bool) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            yield from _csv_frames(path, chunk_rows, threads)
    except pd.errors.EmptyDataError:
        raise TrainingError(f"data file is empty: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError, pa.ArrowException) as exc:
        raise TrainingError(f"cannot read data file {path}: {_reason(exc)}") from None


def _csv_frames(path: Path, chunk_rows: int, threads: bool) -> Iterator[pd.DataFrame]:
    """Every cell as text, as the in-memory path reads it (training.data decides what is a
    number), parsed by Arrow's reader: four times pandas's speed."""
    import pyarrow as pa
    from pyarrow import csv

    names = read_columns(path)
    reader = csv.open_csv(
        path,
        # The header as pandas reads it (a blank one is "Unnamed: N"), so that both paths
        # name every column alike.
        read_options=csv.ReadOptions(
            block_size=CSV_BLOCK_BYTES, use_threads=threads, column_names=names, skip_rows=1
        ),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    # Arrow's blocks are sized in bytes; re-cut them into `chunk_rows` rows.
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        while rows >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).to_pandas()
            rest = table.slice(chunk_rows)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending).to_pandas()


def _shard_key(path: Path, seed: int) -> np.uint64:
    digest = hashlib.sha256(f"{seed}\0{path.name}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: consecutive positions -> independent, uniform 64-bit values."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
