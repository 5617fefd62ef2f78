"""`python -m app.score INPUT OUTPUT --engine spark`: the same scoring with PySpark.

    spark.read.csv / parquet -> select(id, features) -> mapInPandas(Scorer) -> write

INPUT is a file, a directory or a glob of them (any path Spark reads: `hdfs://`, `s3a://`...);
it is Parquet when its name, or the names of the files in the directory or the glob, end in
`.parquet` or `.pq`, else CSV, as the local engine decides. CSV cells reach the scorer as text,
exactly as the local engine reads them (`pd.read_csv(dtype=str, keep_default_na=False)`): no
type inference, an empty cell is an empty string, quotes are doubled as RFC 4180 has them,
header names stripped; Parquet columns keep their types. A CSV row with more cells than its
file's header stops the job, as pandas refuses it; one with fewer has the rest missing, as
pandas reads it. (Not read as the local engine does: a quoted cell holding a line break.)

OUTPUT is a directory of part files, one per input split: Parquet when its name ends in
`.parquet` or `.pq`, else CSV with a header, as the local engine decides for its file. An
existing OUTPUT is replaced only when it is an earlier output (nothing but part files and
Spark's markers), else refused. The rows keep their order within a file, not across files:
`--id-column` carries each row's id.

The session is this process's active one when there is one (a user's job calling `score`),
else one started for the command at `--spark-master` (`local[*]`) and stopped at the end. Users
of their own PySpark job need no engine:

    scorer = Scorer("models", "churn", id_column="id")
    df.mapInPandas(scorer.score_batches, output_schema(scorer, df.schema))

A cell that is not a number stops the job with the `ScoreError` the scorer raised on the
executor (the row's id and the column), as in every engine, never a Java stack trace.
"""

from __future__ import annotations

import argparse
import csv
import glob
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]
from pyspark import Accumulator
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from app.engines import log_to_stderr
from app.scoring import ScoreError, Scorer

logger = logging.getLogger(__name__)

KINDS: dict[str, DataType] = {
    "double": DoubleType(),
    "string": StringType(),
    "long": LongType(),
    "boolean": BooleanType(),
}
"""Spark's type for each kind `Scorer.output_columns` names."""

_PARQUET = (".parquet", ".pq")
# Spark's CSV reader and writer as RFC 4180 (and pandas) has it: a quote inside a quoted cell
# is doubled, not escaped with a backslash; no cell trimmed.
_CSV = {"header": "true", "quote": '"', "escape": '"'}
_MALFORMED = "__tabserve_malformed_row__"
"""Where Spark's CSV reader puts the text of a row whose cell count is not its header's."""
_SPARK_OUTPUT = re.compile(r"^(part-.*|_SUCCESS|_temporary|_committed_.*|_started_.*|\..*\.crc)$")
_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"
_SCORE_ERROR = re.compile(r"\bScoreError: (.+)")
_FAILED_READ = re.compile(r"Encountered error while reading file (\S+?)\.?\s")
_CAUSE = re.compile(r"Caused by: [\w.$]+: (.+)")
_EXPECTED = re.compile(r"Expected: .+ but found: .+")
_NOISY = (
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
    "org.apache.spark.util.Utils",
    "org.apache.spark.sql.execution.datasources.FileFormatWriter",
)
"""Loggers that print a failed task's Java and Python stack traces (each, several times);
the failure reaches the command as an exception anyway, with them."""


def output_schema(scorer: Scorer, input_schema: StructType) -> StructType:
    """The schema of what `scorer.score_batches` yields for rows of `input_schema`: the id
    column as the input has it, then `prediction` and a classifier's `probability_<class>`.
    Loads the bundle in this process (the driver)."""
    fields: list[StructField] = []
    if scorer.id_column is not None:
        if scorer.id_column not in input_schema.names:
            raise ScoreError(f"no column {scorer.id_column!r} (--id-column)")
        fields.append(input_schema[scorer.id_column])
    fields += [StructField(name, KINDS[kind]) for name, kind in scorer.output_columns()]
    return StructType(fields)


def score(scorer: Scorer, source: str, target: Path, options: argparse.Namespace) -> int:
    """Score every row of `source` into the directory `target`; the number of rows."""
    log_to_stderr(logger)
    output = _uri(target)
    _check_target(output)
    parquet_in = _is_parquet_input(source)
    started = time.perf_counter()
    with _quiet_pandas_warning(), _session(options.spark_master, scorer.chunk_rows) as spark:
        logger.info("engine start-up: %.1f s", time.perf_counter() - started)
        rows = spark.sparkContext.accumulator(0)
        try:
            frame, header_cells = _read(spark, source, parquet_in)
            frame = _prepared(scorer, frame, csv_cells=not parquet_in)
            schema = output_schema(scorer, frame.schema)
            scored = frame.mapInPandas(_Job(scorer, header_cells, rows), schema)
            if Path(output).suffix.lower() in _PARQUET:
                scored.write.mode("overwrite").parquet(output)
            else:
                writer = scored.write.mode("overwrite").options(**_CSV, emptyValue="")
                writer.csv(output)
        except (PySparkException, Py4JJavaError) as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from None
        total: int = rows.value
    return total


class _Job:
    """What each task runs on its batches: the CSV rows' cell counts checked, the rows
    scored and counted. Pickles small (the scorer loads its bundle once per worker)."""

    def __init__(self, scorer: Scorer, header_cells: int | None, rows: Accumulator[int]) -> None:
        self.scorer = scorer
        self.header_cells = header_cells
        self.rows = rows

    def __call__(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            if _MALFORMED in frame:
                self._check_cells(frame.pop(_MALFORMED), frame)
            out = self.scorer.score(frame)
            self.rows.add(len(out))
            yield out

    def _check_cells(self, lines: pd.Series[str], frame: pd.DataFrame) -> None:
        """Refuse a row with more cells than the header, as pandas does; Spark has read a row
        with fewer as pandas does, the rest missing."""
        for i in np.flatnonzero(lines.notna().to_numpy()):
            line = str(lines.iloc[i])
            cells = len(next(csv.reader([line]), []))
            if self.header_cells is not None and cells > self.header_cells:
                id_column = self.scorer.id_column
                where = (
                    f"the row whose {id_column} is {frame[id_column].iloc[i]!r}"
                    if id_column is not None
                    else f"the row {line[:60]!r}"
                )
                raise ScoreError(f"{where} has {cells} cells, the header {self.header_cells}")


def _read(spark: SparkSession, source: str, parquet: bool) -> tuple[DataFrame, int | None]:
    """`source` as Spark reads it, and a CSV's number of header cells: every CSV cell as text
    (header names stripped, empty cells empty strings after `_prepared`), Parquet's types."""
    if parquet:
        return spark.read.parquet(source), None
    header = _header(spark, source)
    schema = StructType(
        [StructField(name, StringType()) for name in header]
        + [StructField(_MALFORMED, StringType())]
    )
    frame = (
        spark.read.schema(schema)
        .options(**_CSV, mode="PERMISSIVE", columnNameOfCorruptRecord=_MALFORMED)
        .option("enforceSchema", "false")  # every file's header checked against the first's
        .csv(source)
    )
    names = [name.strip() for name in header]
    return frame.toDF(*names, _MALFORMED), len(header)


def _header(spark: SparkSession, source: str) -> list[str]:
    """The CSV header's names: read here from the first local file when it is plain text
    (a Spark job saved), else by Spark (which names blank and repeated ones)."""
    files = sorted(_local_files(source))
    if files and Path(files[0]).suffix.lower() == ".csv":
        with Path(files[0]).open(newline="", encoding="utf-8-sig") as text:
            names = next(csv.reader(text), [])
        if names and all(names) and len(set(names)) == len(names):
            return names
    return spark.read.options(**_CSV).csv(source).columns


def _prepared(scorer: Scorer, frame: DataFrame, *, csv_cells: bool) -> DataFrame:
    """The columns the scorer reads (the id and the features), after the scorer's own checks
    on the columns there are (a missing feature or id column, refused on the driver)."""
    scorer.score(pd.DataFrame({name: [""] for name in frame.columns}))  # one blank row
    names = [c for c in frame.columns if c != _MALFORMED]
    wanted = [n for n in dict.fromkeys([scorer.id_column, *scorer.predictor.features]) if n]
    columns: list[Column] = []
    for name in (n for n in wanted if n in names):
        column = sf.col(f"`{name.replace('`', '``')}`")
        # Spark reads an empty CSV cell as null; the local engine as an empty string.
        columns.append(sf.coalesce(column, sf.lit("")).alias(name) if csv_cells else column)
    if csv_cells:
        columns.append(sf.col(_MALFORMED))
    return frame.select(*columns)


def _refusal(exc: Exception) -> ScoreError | None:
    """The one-line error for a job Spark failed because of its input: the executor's
    ScoreError, a file it could not read (such as a shard whose header is not the first's),
    or what Spark says of a path it cannot read or write; None for others."""
    text = str(exc)
    if isinstance(exc, Py4JJavaError):
        text += "\n" + str(exc.java_exception)
    match = _SCORE_ERROR.search(text)
    if match:
        return ScoreError(match.group(1).strip())
    unreadable = _FAILED_READ.search(text)
    if unreadable:  # a file Spark could not read: the deepest cause's first line
        causes = _CAUSE.findall(text)
        why = causes[-1].strip() if causes else "see Spark's log"
        if expected := _EXPECTED.search(text):
            why = f"{why} {expected.group(0).strip()}"
        return ScoreError(f"cannot read {unreadable.group(1)}: {why}")
    if isinstance(exc, AnalysisException):
        return ScoreError(text.strip().splitlines()[0])
    return None


@contextmanager
def _session(master: str, batch_rows: int) -> Iterator[SparkSession]:
    """This process's active session, or a new one at `master`, stopped at the end; with
    Arrow batches of `batch_rows` rows."""
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("using the active Spark session (master %s)", active.sparkContext.master)
        before = active.conf.get(_BATCH_ROWS)  # its value, or its default
        active.conf.set(_BATCH_ROWS, str(batch_rows))
        try:
            yield active
        finally:
            active.conf.set(_BATCH_ROWS, before or "10000")
        return
    if master.startswith("local"):
        # The workers run this interpreter (not the first `python3` on PATH), and a local
        # Spark listens on loopback only.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master(master)
        .appName("tabserve score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config(_BATCH_ROWS, str(batch_rows))
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
        .getOrCreate()
    )
    try:
        _quiet_logs(spark)
        yield spark
    finally:
        spark.stop()


def _quiet_logs(spark: SparkSession) -> None:
    """Errors only, and no stack traces of failed tasks (the failure is raised here)."""
    context = spark.sparkContext
    context.setLogLevel("ERROR")
    jvm = context._jvm
    if jvm is not None:
        log4j = jvm.org.apache.logging.log4j
        for name in _NOISY:
            log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)


@contextmanager
def _quiet_pandas_warning() -> Iterator[None]:
    """PySpark warns of pandas 3 on every mapInPandas; the tests hold it to the local
    engine's answers instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "PySpark does not yet fully support pandas", category=FutureWarning
        )
        yield


def _is_parquet_input(source: str) -> bool:
    """Parquet when `source`, or the files of the local directory or glob it names, end in
    `.parquet` or `.pq`; else CSV."""
    if PurePosixPath(source.rstrip("/")).suffix.lower() in _PARQUET:
        return True
    files = _local_files(source)
    return bool(files) and all(Path(f).suffix.lower() in _PARQUET for f in files)


def _local_files(source: str) -> list[str]:
    """The files Spark reads for `source` when it is on this machine: itself, the files of a
    directory (not those Spark skips: `_*`, `.*`) or a glob's matches; none for a URI."""
    local = Path(source)
    if local.is_dir():
        return [
            str(p) for p in local.iterdir() if p.is_file() and not p.name.startswith(("_", "."))
        ]
    return glob.glob(source)  # noqa: PTH207 (an absolute pattern, too)


def _uri(target: Path) -> str:
    """`target` as Spark takes it: a URI's `//` that `Path` collapsed restored
    (`s3a:/bucket/x` -> `s3a://bucket/x`)."""
    text = str(target)
    match = re.match(r"^([A-Za-z][\w+.-]*):/(?!/)", text)
    if match and match.group(1).lower() != "file" and len(match.group(1)) > 1:
        return f"{match.group(1)}://{text[match.end() :]}"
    return text


def _check_target(output: str) -> None:
    """Refuse to replace a local file or directory that is not an earlier output."""
    if re.match(r"^[A-Za-z][\w+.-]+:", output) and not output.startswith("file:"):
        return  # another file system: Spark's overwrite as it is
    path = Path(output.removeprefix("file:"))
    if not path.exists():
        return
    if path.is_dir() and all(_SPARK_OUTPUT.match(p.name) for p in path.iterdir()):
        return
    raise ScoreError(
        f"{path} exists and is not an earlier output (a directory of part files): "
        "--engine spark writes a directory, and replaces only one of its own"
    )
