"""Batching for a fast runtime: the small requests of one turn of the event loop, together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import numpy as np

from app.bundle import Decoded
from app.model.drift import DriftMonitor
from app.model.predictor import Predictor, Rows

Outcome = Decoded | Exception
_Pending = tuple[Rows, "asyncio.Future[Decoded]"]


class TurnBatcher:
    """The small requests whose rows were read in one turn of the event loop are encoded, run,
    counted for drift and decoded as one batch (up to `max_rows` rows a call), at the end of
    that turn, on the loop; each caller gets its own rows' predictions.

    For a runtime whose call on a few rows takes microseconds (LiteRT). A worker thread's
    hand-over and wake-up would cost several times the call, and numpy's fixed cost per
    operation makes encoding, decoding and counting one row cost nearly what a batch of them
    does, so doing that work once per batch is most of what batching saves. Nothing waits for
    company, as the thread `Batcher` does for `timeout`: a call this cheap is not worth a
    delay, and a busy server's turns hold several requests each.

    A value the model cannot take (beyond float32 once standardised) fails its own request
    only: the batch is then encoded request by request, so the error names the request's own
    row.
    """

    def __init__(
        self,
        predictor: Predictor,
        max_rows: int,
        on_batch: Callable[[int], None] | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._predictor = predictor
        self._max_rows = max_rows
        self._on_batch = on_batch
        self._drift = drift
        self._pending: list[_Pending] = []
        self._scheduled = False

    async def submit(self, rows: Rows) -> Decoded:
        """The predictions for `rows`, computed with the other requests of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decoded] = loop.create_future()
        self._pending.append((rows, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run)
        return await future

    def close(self, *, wait: bool = True) -> None:
        """Nothing to stop: every call is made on the event loop."""

    def _run(self) -> None:
        self._scheduled = False
        while self._pending:
            batch = self._take()
            try:
                outcomes = self._predict([rows for rows, _ in batch])
            except Exception as exc:  # the call failed: each caller hears why
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _take(self) -> list[_Pending]:
        take, _ = fitting((len(rows) for rows, _ in self._pending), self._max_rows)
        batch, self._pending = self._pending[:take], self._pending[take:]
        return batch

    def _predict(self, requests: list[Rows]) -> list[Outcome]:
        predictor = self._predictor
        rows = requests[0] if len(requests) == 1 else [row for r in requests for row in r]
        x, missing = predictor.stats.encode_rows(rows)
        if not np.isfinite(x).all():
            if len(requests) == 1:
                predictor.encode_rows(rows)  # raises InvalidInput, naming the value
            return [self._alone(r) for r in requests]
        if self._on_batch is not None:
            self._on_batch(len(x))
        outputs = predictor.runtime(x)
        if self._drift is not None:
            self._drift.observe(x, missing, outputs)
        decoded = predictor.decode(outputs)
        if len(requests) == 1:
            return [decoded]
        out: list[Outcome] = []
        start = 0
        for r in requests:
            end = start + len(r)
            p = decoded.probabilities
            out.append(Decoded(decoded.values[start:end], None if p is None else p[start:end]))
            start = end
        return out

    def _alone(self, rows: Rows) -> Outcome:
        try:
            return self._predict([rows])[0]
        except Exception as exc:  # this request's own failure, not its neighbours'
            return exc


def fitting(sizes: Iterable[int], max_rows: int) -> tuple[int, int]:
    """How many of the first requests of `sizes` rows each fit in one call of at most
    `max_rows` rows (at least the first, however large), and their rows."""
    take = rows = 0
    for size in sizes:
        if take and rows + size > max_rows:
            break
        take, rows = take + 1, rows + size
    return take, rows
