"""Where model calls run: on the event loop, in worker threads, or coalesced into batches."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import numpy as np

from app.bundle import Decoded, Encoded
from app.model.drift import DriftMonitor
from app.model.predictor import Predictor, Rows
from app.model.shadow import Shadow, ShadowScorer
from app.model.turn_batcher import TurnBatcher, fitting
from app.ops.request_context import note_rows

# Requests up to this many rows are "small": they may share batched calls, or run on the event
# loop on a fast runtime (tens of microseconds; a thread hop would cost more). Larger ones
# run alone in a worker thread, so they never hold the event loop up.
INLINE_MAX_ROWS = 64


class Batcher:
    """Coalesces concurrent requests into one model call, each caller getting its own rows.

    As TF Serving's `max_batch_size` and `batch_timeout_micros`: while the model is idle, rows
    wait at most `timeout` seconds for company; while a call runs, arriving rows gather for the
    next one, up to `max_rows` (a larger request goes alone). One worker thread makes every
    call, so a runtime that is not thread-safe is only ever used by that thread.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_rows: int,
        timeout: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._max_rows = max_rows
        self._timeout = timeout
        self._on_batch = on_batch
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._pending_rows = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for rows `x`, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((x, future))
        self._pending_rows += len(x)
        if not self._busy:
            if self._pending_rows >= self._max_rows or self._timeout <= 0:
                self._dispatch()
            elif self._timer is None:
                self._timer = loop.call_later(self._timeout, self._dispatch)
        return await future

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker thread once the call in progress (if any) has finished; `wait`
        blocks until then."""
        self._executor.shutdown(wait=wait)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._pending:
            return
        take, rows = fitting((len(x) for x, _ in self._pending), self._max_rows)
        batch, self._pending = self._pending[:take], self._pending[take:]
        self._pending_rows -= rows
        self._busy = True
        inputs = [x for x, _ in batch]
        call = asyncio.get_running_loop().run_in_executor(self._executor, self._call, inputs)
        call.add_done_callback(lambda done: self._finish(batch, done))

    def _call(self, inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        if self._on_batch is not None:
            self._on_batch(len(x))
        return self._run(x)

    def _finish(
        self,
        batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]],
        done: asyncio.Future[np.ndarray],
    ) -> None:
        self._busy = False
        error = done.exception()
        start = 0
        for x, future in batch:
            if future.done():  # the caller went away
                pass
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[start : start + len(x)])
            start += len(x)
        # Rows that arrived during the call have waited already: send them now.
        self._dispatch()


class Inference:
    """Runs one predictor's requests the cheapest safe way: a large request alone in a worker
    thread; small ones through the batcher when batching is on (a `TurnBatcher` for a fast
    runtime, a `Batcher` for a slow one), else inline on a fast runtime or in a worker thread
    on a slow one.

    `on_call` hears the row count of every model call that is not batched (the batcher has
    its own hook), so batch-size metrics see every call. `drift`, when given, sees the inputs
    and outputs of every call made here (a `TurnBatcher` counts its own batches into the same
    monitor); `payload_log` every request's rows and answer, and so does `shadow` when it is
    scoring.
    """

    def __init__(
        self,
        predictor: Predictor,
        batcher: Batcher | TurnBatcher | None = None,
        on_call: Callable[[int], None] | None = None,
        drift: DriftMonitor | None = None,
        payload_log: Callable[[Rows, Decoded], None] | None = None,
        *,
        shadow: Shadow | None = None,
    ) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.drift = drift
        self.shadow = shadow
        self._on_call = on_call
        self._payload_log = payload_log
        self._scorer = shadow if isinstance(shadow, ShadowScorer) else None

    async def predict_rows(self, rows: Rows) -> Decoded:
        """Rows holding every feature (None for missing) -> predictions."""
        return await self._predict(
            len(rows), functools.partial(self.predictor.encode_rows, rows), lambda: rows
        )

    async def predict_matrix(self, matrix: np.ndarray) -> Decoded:
        """Rows as one number matrix, columns in the bundle's feature order, NaN or infinity
        for missing: binary tensors go straight to the transform, with no row objects made,
        unless the request joins a `TurnBatcher`'s batch (as rows) or the payload log or a
        shadow wants the rows."""
        features = self.predictor.features

        def rows() -> Rows:
            table = matrix.tolist()
            for i, j in np.argwhere(~np.isfinite(matrix)).tolist():
                table[i][j] = None
            return [dict(zip(features, row, strict=True)) for row in table]

        def encode() -> Encoded:
            columns = {f: matrix[:, j] for j, f in enumerate(features)}
            return self.predictor.encode_columns(columns)

        return await self._predict(len(matrix), encode, rows)

    async def _predict(
        self, n: int, encode: Callable[[], Encoded], rows: Callable[[], Rows]
    ) -> Decoded:
        """`encode` checks the row count (413) before any work; `rows` gives the rows as
        objects, for a `TurnBatcher`, the payload log and the shadow."""
        given: Rows | None = None
        if n <= INLINE_MAX_ROWS and isinstance(self.batcher, TurnBatcher):
            self.predictor.check_row_count(n)
            given = rows()
            decoded = await self.batcher.submit(given)
        else:
            decoded = await self._encode_and_predict(n, encode)
        note_rows(n)
        if self._payload_log is not None or self._scorer is not None:
            given = rows() if given is None else given
            if self._payload_log is not None:
                self._payload_log(given, decoded)
            if self._scorer is not None:
                self._scorer.submit(given, decoded)
        return decoded

    async def _encode_and_predict(self, n: int, encode: Callable[[], Encoded]) -> Decoded:
        predictor = self.predictor
        if n > INLINE_MAX_ROWS or (self.batcher is None and not predictor.runtime.fast):
            # Large requests are a batch of their own: coalescing would only delay them
            # and others. A request that times out stops waiting; its call finishes alone.
            x, missing, outputs = await anyio.to_thread.run_sync(
                self._encode_and_run, encode, abandon_on_cancel=True
            )
        else:
            x, missing = encode()
            if isinstance(self.batcher, Batcher):
                outputs = await self.batcher.submit(x)
            else:
                outputs = predictor.runtime(x)
        batched = self.batcher is not None and n <= INLINE_MAX_ROWS
        if not batched and self._on_call is not None:  # the batcher reports its own calls
            self._on_call(n)
        if self.drift is not None:
            self.drift.observe(x, missing, outputs)
        return predictor.decode(outputs)

    def _encode_and_run(
        self, encode: Callable[[], Encoded]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, missing = encode()
        return x, missing, self.predictor.runtime(x)

    def close(self, *, wait: bool = True) -> None:
        if self.batcher is not None:
            self.batcher.close(wait=wait)
        if self._scorer is not None:  # after the batcher: its last answers are queued by now
            self._scorer.close(wait=wait)
