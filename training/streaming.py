"""Encoded rows of one split, chunk by chunk, from the shards (or from the cache of what an
earlier read encoded): what the training loop, the validation loss and the test evaluation read
when the data are streamed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.bundle import PreprocessingStats
from training.cache import EncodedCache
from training.scan import StreamSchema, clean_chunks
from training.sources import CHUNK_ROWS, pipeline_of, sampled


@dataclass(frozen=True)
class ShardRows:
    schema: StreamSchema
    stats: PreprocessingStats
    seed: int
    chunk_rows: int = CHUNK_ROWS
    cache: EncodedCache | None = None

    def encoded(
        self,
        split: int,
        pipeline: int = 0,
        pipelines: int = 1,
        threads: bool = True,
        fraction: float = 1.0,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(inputs, encoded targets) of the `split` rows that input `pipeline` of `pipelines`
        reads (or of a `fraction` of them), one chunk at a time, through the bundle's own
        transform (see `training.sources.read_chunks` for `threads`)."""
        if self.cache is None:
            return self._from_shards(split, pipeline, pipelines, threads, fraction)
        name = f"split{split}-pipeline{pipeline}of{pipelines}-fraction{fraction:.6g}"
        return self.cache.rows(
            name, lambda: self._from_shards(split, pipeline, pipelines, threads, fraction)
        )

    def columns(
        self,
        split: int,
        pipeline: int = 0,
        pipelines: int = 1,
        threads: bool = True,
        fraction: float = 1.0,
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """The same rows as `encoded`, always from the shards, before the transform: cleaned
        feature columns by name, and the raw targets (what another version's statistics take)."""
        for chunk in clean_chunks(self.schema, self.seed, self.chunk_rows, threads):
            mine = chunk.splits == split
            if pipelines > 1:
                mine &= pipeline_of(chunk.hashes, pipelines) == pipeline
            if fraction < 1:
                mine &= sampled(chunk.hashes, fraction)
            if mine.any():
                columns = {name: column[mine] for name, column in chunk.features.items()}
                yield columns, chunk.y[mine].to_numpy()

    def _from_shards(
        self, split: int, pipeline: int, pipelines: int, threads: bool, fraction: float
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for columns, y in self.columns(split, pipeline, pipelines, threads, fraction):
            yield self.stats.transform(columns), self.stats.target.encode(y)
