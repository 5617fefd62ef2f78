"""`python -m app.score INPUT OUTPUT --engine ray`: the same scoring with Ray Data.

    read_csv / read_parquet -> map_batches(_Scoring, one actor per CPU) -> write_parquet / csv

INPUT is a file, a directory (its `.csv` or `.parquet` files, recursively) or a glob; all CSV or
all Parquet. CSV cells reach the scorer as text, exactly as the local engine reads them
(`pd.read_csv(dtype=str, keep_default_na=False)`): no type inference, an empty cell is an empty
string and `NA` the text `NA` (the bundle's cell rule reads both as missing), header names
stripped; Parquet columns keep their types. A CSV row whose cell count is not its header's
stops the job, named by its id (pandas would read a short row's last cells as blanks).

OUTPUT is a directory of part files: Parquet when its name ends in `.parquet` or `.pq`, else CSV
with a header, as the local engine decides for its file. Read in the order of their names, the
part files hold the rows in the input's order (the files' order for a directory or a glob). An
existing OUTPUT is replaced only when it is an earlier output (part files and `_SUCCESS`).

Each actor builds its `app.scoring.Scorer` (which pickles small) and loads the bundle once, when
it starts; it scores pandas batches of at most `--chunk-rows` rows. Ray is the one this process
already runs (a user's job calling `score`), else the cluster `RAY_ADDRESS` names (INPUT and
OUTPUT must then be paths every node sees), else a local Ray started for the command on the CPUs
this process may use and stopped at the end. A cell that is not a number stops the job with the
`ScoreError` an actor raised (the row's id and the column), as in every engine, never a Ray
traceback; a missing feature or id column is refused before Ray starts.
"""

from __future__ import annotations

import argparse
import csv
import gc
import glob
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.context import DataContext
from ray.util.annotations import RayDeprecationWarning

from app.engines import log_to_stderr
from app.scoring import ScoreError, Scorer

logger = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 256 * 1024**2
"""A local Ray's shared-memory object store: the blocks in flight, not the data (Ray spills to
disk beyond it, and Ray Data holds back reading when it fills)."""
ACTOR_CPUS = 0.5
"""The CPU each actor reserves: one actor per CPU, and room beside them for the read and write
tasks (with whole CPUs the actors would take them all and the reads would never start)."""
_PARQUET = (".parquet", ".pq")
_PART = re.compile(r"^\w+_\d{6}(-\d+)?\.(parquet|csv)$")
"""The name Ray Data gives a part file."""
_SUCCESS = "_SUCCESS"
_RETRY_NOTE = re.compile(r"\nFailed to .* after \d+/\d+ attempts .*", re.DOTALL)
"""What Ray Data appends to the message of an error a task raised."""


class _Scoring:
    """What each actor runs: the scorer, its bundle loaded when the actor starts."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        scorer.predictor  # noqa: B018 (loads the bundle now, not with the first batch)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        names = [str(c).strip() for c in frame.columns]  # as the local engine reads a header
        if names != list(frame.columns):
            frame = frame.set_axis(names, axis=1)
        return self.scorer.score(frame)


def score(scorer: Scorer, source: str, target: Path, options: argparse.Namespace) -> int:
    """Score every row of `source` into the directory `target`; the number of rows."""
    del options  # no option of its own
    log_to_stderr(logger)
    paths = _inputs(source)
    parquet = _is_parquet(paths[0])
    names = _parquet_columns(paths[0]) if parquet else _csv_header(paths)
    # A missing feature or id column, refused here rather than by every actor: one blank row.
    scorer.score(pd.DataFrame({name.strip(): [""] for name in names}))
    _clear(target)
    started = time.perf_counter()
    with _ray() as (cpus, own), _job_settings() as ready:
        dataset = (
            ray.data.read_parquet(paths)
            if parquet
            else ray.data.read_csv(paths, convert_options=_as_text(names))
        )
        remote: dict[str, Any] = {}
        if not os.environ.get("RAY_ADDRESS"):
            # A local actor that dies would die again: the job fails rather than restart it
            # (and Ray's warning that a restarted actor might miss its arguments goes too).
            remote["max_restarts"] = 0
        with warnings.catch_warnings():
            # `max_restarts` has no parameter of its own yet, only Ray's deprecated **kwargs.
            warnings.simplefilter("ignore", RayDeprecationWarning)
            scored = dataset.map_batches(
                _Scoring,
                fn_constructor_kwargs={"scorer": scorer},
                compute=ray.data.ActorPoolStrategy(size=cpus),
                batch_format="pandas",
                batch_size=scorer.chunk_rows,
                zero_copy_batch=True,  # the scorer reads the batch, never writes to it
                num_cpus=ACTOR_CPUS,
                **remote,
            )
        failure: BaseException | None = None
        try:
            with warnings.catch_warnings():
                # One small block (a Parquet file of one row group) cannot keep every actor busy.
                warnings.filterwarnings("ignore", "The minimum number of concurrent actors")
                if _is_parquet(target):
                    scored.write_parquet(str(target))
                else:
                    scored.write_csv(str(target))
        except (ray.exceptions.RayError, pa.ArrowException, OSError) as exc:
            failure = _refusal(_cause(exc), paths, scorer.id_column) or exc
        finally:
            logger.info("engine start-up: %.1f s", (ready() or time.perf_counter()) - started)
        if not own:
            # The job's actors go when nothing refers to them any more (Ray Data drops its
            # references, it does not kill them; a failure's traceback holds them in a cycle):
            # free their CPUs for the next job on this Ray.
            del dataset, scored
            gc.collect()
        if failure is not None:
            raise failure
    target.mkdir(parents=True, exist_ok=True)  # no rows, no part file
    (target / _SUCCESS).touch()
    return _rows(target, scorer)


# --- the input and the output ----------------------------------------------------------------


def _inputs(source: str) -> list[str]:
    """The files `source` names: itself, the CSV or Parquet files in a directory (recursively,
    but those whose names start with `_` or `.`), or a glob's files; all of one format."""
    path = Path(source)
    if path.is_dir():
        files = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (".csv", *_PARQUET)
            and not p.name.startswith(("_", "."))
        )
    elif path.is_file():
        files = [source]
    else:
        files = sorted(p for p in glob.glob(source, recursive=True) if Path(p).is_file())  # noqa: PTH207 (any pattern)
    if not files:
        raise ScoreError(f"no CSV or Parquet file at {source}")
    if len({_is_parquet(f) for f in files}) > 1:
        raise ScoreError(f"{source} holds both CSV and Parquet files")
    return files


def _is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in _PARQUET


def _parquet_columns(path: str) -> list[str]:
    return list(pq.read_schema(path).names)


def _csv_header(paths: list[str]) -> list[str]:
    """Every column name the files' headers have, in order of appearance, as written."""
    names: dict[str, None] = {}
    for path in paths:
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            names.update(dict.fromkeys(next(csv.reader(f), [])))
    return list(names)


def _as_text(names: list[str]) -> pacsv.ConvertOptions:
    """Arrow's CSV reader as `pd.read_csv(dtype=str, keep_default_na=False)`: every column a
    string, no cell null (an empty one is an empty string), nothing else read as missing."""
    return pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
    )


def _clear(target: Path) -> None:
    """Make way for the output: nothing there, or an earlier output, removed."""
    if not target.exists():
        return
    entries = list(target.iterdir()) if target.is_dir() else None
    if entries is None or not all(
        e.is_file() and (e.name == _SUCCESS or _PART.match(e.name)) for e in entries
    ):
        raise ScoreError(
            f"{target} exists and is not an earlier output (a directory of part files): "
            "--engine ray writes a directory, and replaces only one of its own"
        )
    for entry in entries:
        entry.unlink()


def _rows(target: Path, scorer: Scorer) -> int:
    """The rows written, from the part files (Parquet's footers; CSV read as text)."""
    if _is_parquet(target):
        return int(pads.dataset(target, format="parquet").count_rows())
    names = [scorer.id_column] if scorer.id_column is not None else []
    names += [name for name, _ in scorer.output_columns()]
    text = pads.CsvFileFormat(convert_options=_as_text(names))
    return int(pads.dataset(target, format=text).count_rows())


# --- Ray ---------------------------------------------------------------------------------------


@contextmanager
def _ray() -> Iterator[tuple[int, bool]]:
    """A Ray to run on: this process's, the cluster `RAY_ADDRESS` names, or a new local one
    (stopped at the end). Yields its number of CPUs (the number of actors), and whether it was
    started here."""
    started = not ray.is_initialized()
    if started:
        address = os.environ.get("RAY_ADDRESS") or None
        local: dict[str, Any] = {}
        if address is None:
            local = {"num_cpus": _cpus(), "object_store_memory": OBJECT_STORE_BYTES}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            **local,
        )
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        yield max(1, cpus), started
    finally:
        if started:
            ray.shutdown()


def _cpus() -> int:
    """The CPUs this process may run on (`taskset` counts), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def _job_settings() -> Iterator[Callable[[], float | None]]:
    """Ray Data set for the job, as it was after it: no progress bars but on a terminal, the
    actor's own exception raised (a ScoreError, not Ray's wrapper), the part files in the
    input's order, no log of a failed task's traceback (the error is raised here). Yields a
    function answering when the job's actors were all up (a `perf_counter`), or None."""
    context = DataContext.get_current()
    data_logger = logging.getLogger("ray.data")
    wanted = {
        # Ray 2.60's new Parquet reader starts a pool of actors to read the files' footers:
        # five more processes to start before the first row, seconds on a small machine.
        "use_datasource_v2": False,
        "enable_progress_bars": sys.stderr.isatty(),
        "print_on_execution_start": False,
        "raise_original_map_exception": True,
    }
    saved = {name: getattr(context, name) for name in wanted}
    saved_order = context.execution_options.preserve_order
    saved_callbacks = context.custom_execution_callback_classes
    saved_level = data_logger.level
    for name, value in wanted.items():
        setattr(context, name, value)
    context.execution_options.preserve_order = True
    data_logger.setLevel(logging.CRITICAL)
    ready_at: list[float] = []
    callback = _actors_ready_callback(ready_at)
    if callback is not None:
        context.custom_execution_callback_classes = [*saved_callbacks, callback]
    try:
        yield lambda: ready_at[0] if ready_at else None
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = saved_order
        context.custom_execution_callback_classes = saved_callbacks
        data_logger.setLevel(saved_level)


def _actors_ready_callback(ready_at: list[float]) -> type | None:
    """A Ray Data execution callback appending to `ready_at` when every actor of the job is
    up, polled at each step of the scheduling loop (the actors start beside the first read
    task, not before it); None on a Ray without this interface (no figure beyond ray.init)."""
    try:
        from ray.data._internal.execution.execution_callback import ExecutionCallback
    except ImportError:
        return None

    class ActorsReady(ExecutionCallback):
        def on_execution_step(self, executor: Any) -> None:
            if ready_at:
                return
            try:
                pools = [op.get_actor_info() for op in executor._topology]
            except Exception:  # only a figure for the log: never fail the job for it
                ready_at.append(time.perf_counter())
                return
            if any(p.running for p in pools) and not any(p.pending for p in pools):
                ready_at.append(time.perf_counter())

    return ActorsReady


def _cause(exc: BaseException) -> BaseException:
    """The error a task or actor raised, without Ray's wrappers."""
    seen = exc
    while True:
        inner = getattr(seen, "cause", None)  # a RayTaskError's original exception
        if isinstance(inner, BaseException) and inner is not seen:
            seen = inner
        elif seen.__cause__ is not None:
            seen = seen.__cause__
        else:
            return seen


def _refusal(cause: BaseException, paths: list[str], id_column: str | None) -> Exception | None:
    """The one-line error for a job its input failed, as the command reports it: the
    scorer's ScoreError, an Arrow or OS error (without Ray Data's note on retries), a CSV row
    of the wrong length found and named; None for any other failure (a bug: its traceback)."""
    if isinstance(cause, ScoreError | pa.ArrowException | OSError):
        if cause.args and isinstance(cause.args[0], str):
            cause.args = (_RETRY_NOTE.sub("", cause.args[0]), *cause.args[1:])
        return cause
    if isinstance(cause, ValueError) and str(cause).startswith("Failed to read CSV file:"):
        # Ray Data's words for Arrow's refusal of a row, whose own words it drops.
        for path in paths:
            refusal = _bad_csv_row(path, id_column)
            if refusal is not None:
                return refusal
        return ScoreError(_RETRY_NOTE.sub("", str(cause)))
    return None


class _FirstBadRow:
    """Arrow's handler of a CSV row whose cell count is not its header's: keeps the first."""

    def __init__(self) -> None:
        self.row: Any = None

    def __call__(self, row: Any) -> str:
        if self.row is None:
            self.row = row
        return "skip"


def _bad_csv_row(path: str, id_column: str | None) -> ScoreError | None:
    """The first row of `path` whose cell count is not its header's, named by its id (or its
    line) as the scorer names a bad cell's row; None if there is none."""
    header = _csv_header([path])
    found = _FirstBadRow()
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False),  # line numbers
        parse_options=pacsv.ParseOptions(invalid_row_handler=found),
        convert_options=_as_text(header),
    )
    with reader:
        for _ in reader:
            if found.row is not None:
                break
    row = found.row
    if row is None:
        return None
    cells = next(csv.reader([row.text]), [])
    names = [n.strip() for n in header]
    if id_column in names and names.index(id_column) < len(cells):
        where = f"the row whose {id_column} is {cells[names.index(id_column)]!r}"
    else:
        where = f"{path}, line {row.number}"
    return ScoreError(f"{where} has {row.actual_columns} cells, the header {row.expected_columns}")
