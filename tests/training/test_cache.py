"""Streamed data: what the first read of a split encodes is kept on disk and read back by every
later read, with the same rows, so training gives the same model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.bundle import read_metadata
from tests.helpers.data import MESSY_DROP, SEED, messy_frame, write_shards
from training.cache import EncodedCache, cache_key
from training.config import Hyperparameters, TrainConfig
from training.pipeline import run


def chunks(calls: list[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    calls.append(1)
    rng = np.random.default_rng(0)
    for n in (5, 3, 7):
        yield rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_the_first_read_is_written_and_later_reads_come_from_disk(tmp_path: Path) -> None:
    cache = EncodedCache.open(tmp_path, cache_key("data", "stats"))
    calls: list[int] = []
    first = list(cache.rows("train", lambda: chunks(calls)))
    again = list(cache.rows("train", lambda: chunks(calls)))
    assert calls == [1]  # the shards were read once
    assert len(again) == len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
        assert x2.dtype == np.dtype(np.float32)
        assert y2.dtype == y1.dtype
    assert cache.size_bytes() > 4 * 15 * 4  # at least the inputs' bytes
    cache.close()
    assert cache.directory.exists(), "a cache in a named directory is kept"


def test_a_read_cut_short_leaves_nothing_to_read_back(tmp_path: Path) -> None:
    cache = EncodedCache.open(None, "k")
    calls: list[int] = []
    reader = cache.rows("train", lambda: chunks(calls))
    next(reader)
    reader.close()  # as tf.data stops a generator mid-way
    assert list(cache.directory.iterdir()) == []
    assert len(list(cache.rows("train", lambda: chunks(calls)))) == 3
    assert calls == [1, 1]
    cache.close()
    assert not cache.directory.exists(), "a temporary cache is removed"


def test_training_from_the_cache_gives_the_same_model(tmp_path: Path) -> None:
    frame = messy_frame().drop(columns=list(MESSY_DROP["price"]))
    shards = write_shards(frame, tmp_path / "shards", parts=3)
    metrics = {}
    for cached in (True, False):
        version = run(
            TrainConfig(
                data=shards,
                target="price",
                categorical=("rooms",),
                model_dir=tmp_path / "models",
                model_name=f"cached-{cached}",
                cache=cached,
                cache_dir=tmp_path / "cache" if cached else None,
                params=Hyperparameters(epochs=3, seed=SEED),
            )
        )
        assert version is not None
        metrics[cached] = read_metadata(version).test.metrics
    assert metrics[True] == metrics[False]
    kept = list((tmp_path / "cache").glob("*/*.npy"))
    assert len(kept) == 3, kept  # training, validation and the test pass's rows
    assert all(p.stat().st_size > 0 for p in kept)


def test_the_cache_is_set_from_the_command_line(tmp_path: Path) -> None:
    from training.cli import parse_args

    assert parse_args(["--no-cache"]).no_cache is True
    assert parse_args(["--cache-dir", str(tmp_path)]).cache_dir == tmp_path
