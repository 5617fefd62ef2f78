"""Encoded rows of streamed data kept on disk: the first read of a split parses the shards and
writes what it encodes, every later read (epochs, validation, the test pass) reads that back.

Parsing CSV cells dominates a streamed epoch; the encoded rows are float32 inputs and their
targets, a few bytes a cell. Files are numpy's `.npy` records one after another, read with
`allow_pickle=False`; one appears only once complete (written aside, then renamed), so a read
cut short leaves nothing half-written to be read later.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

Encoded = Iterator[tuple[np.ndarray, np.ndarray]]


def cache_key(*parts: str) -> str:
    """A short digest of what the cached rows depend on: the data, the statistics, the split."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class EncodedCache:
    """Cached encoded rows under `directory`, one file per read (split, input pipeline,
    sample); `temporary` caches are removed by `close`."""

    def __init__(self, directory: Path, key: str, temporary: bool) -> None:
        self.directory = directory / key
        self.directory.mkdir(parents=True, exist_ok=True)
        self.temporary = temporary

    @classmethod
    def open(cls, directory: Path | None, key: str) -> EncodedCache:
        """Under `directory` (kept), or a new temporary directory (removed after the run)."""
        if directory is not None:
            return cls(directory, key, temporary=False)
        return cls(Path(tempfile.mkdtemp(prefix="tabserve-cache-")), key, temporary=True)

    def rows(
        self, name: str, produce: Callable[[], Encoded]
    ) -> Generator[tuple[np.ndarray, np.ndarray]]:
        """The rows cached as `name`, or `produce`'s, written to the cache as they go by."""
        path = self.directory / f"{name}.npy"
        if path.exists():
            yield from _read(path)
            return
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as f:
                for x, y in produce():
                    np.save(f, np.ascontiguousarray(x), allow_pickle=False)
                    np.save(f, np.ascontiguousarray(y), allow_pickle=False)
                    yield x, y
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.npy"))

    def close(self) -> None:
        logger.info(
            "encoded-row cache: %.1f MB on disk in %s%s",
            self.size_bytes() / 1e6,
            self.directory,
            " (removed)" if self.temporary else " (kept)",
        )
        if self.temporary:
            shutil.rmtree(self.directory.parent, ignore_errors=True)


def _read(path: Path) -> Encoded:
    size = path.stat().st_size
    with path.open("rb") as f:
        while f.tell() < size:
            x = np.load(f, allow_pickle=False)
            y = np.load(f, allow_pickle=False)
            yield x, y
