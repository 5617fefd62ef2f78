"""Encoded rows of one split, chunk by chunk, straight from the shards: what the training loop,
the validation loss and the test evaluation read when the data are streamed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.bundle import PreprocessingStats
from training.data import TEST_FRACTION, VALIDATION_FRACTION
from training.scan import StreamSchema
from training.sources import CHUNK_ROWS, pipeline_of, read_chunks, sampled, split_codes


@dataclass(frozen=True)
class ShardRows:
    schema: StreamSchema
    stats: PreprocessingStats
    seed: int
    chunk_rows: int = CHUNK_ROWS

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
        transform (see `read_chunks` for `threads`)."""
        for chunk in read_chunks(self.schema.shards, self.seed, self.chunk_rows, threads):
            features, y, keep = self.schema.clean(chunk.frame)
            hashes = chunk.hashes[keep]
            mine = split_codes(hashes, TEST_FRACTION, VALIDATION_FRACTION) == split
            if pipelines > 1:
                mine &= pipeline_of(hashes, pipelines) == pipeline
            if fraction < 1:
                mine &= sampled(hashes, fraction)
            if mine.any():
                x = self.stats.transform({name: column[mine] for name, column in features.items()})
                yield x, self.stats.target.encode(y[mine].to_numpy())
