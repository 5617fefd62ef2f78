"""Command-line pieces the benchmarks share: a positive count, and where a run keeps its files."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

logger = logging.getLogger(__name__)


class CannotRun(RuntimeError):
    """The measurement could not be taken (exit status 2)."""


def positive_int(text: str) -> int:
    """A count of at least 1; `1,000,000` and `1_000_000` are read as written."""
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_run_files(p: argparse.ArgumentParser, *, workdir: str, timeout: int, killed: str) -> None:
    """--workdir (help: `workdir`), --keep, --timeout (default `timeout` s; `killed` says what
    happens then) and --results."""
    p.add_argument(
        "--workdir",
        type=Path,
        help=f"{workdir} (default: a temporary directory, removed at the end)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--timeout", type=positive_int, default=timeout, help=f"{killed} ({timeout})")
    p.add_argument(
        "--results",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="where the JSON goes (benchmarks/results)",
    )


@contextmanager
def run_files(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """The directory a run keeps its files in, as `add_run_files`' options ask: --workdir
    (made if missing, always kept), or a temporary one, removed at the end unless --keep."""
    if args.workdir is not None:
        work, temporary = args.workdir.resolve(), False
        work.mkdir(parents=True, exist_ok=True)
    else:
        work, temporary = Path(tempfile.mkdtemp(prefix=prefix)), True
    try:
        yield work
    finally:
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            logger.info("kept %s", work)
