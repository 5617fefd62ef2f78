"""The request log to retrain on (opt-in): every prediction request's rows, as received after
validation, and its predictions, written by a background task so that it never delays or fails
a request.

Requests put entries on a queue bounded in rows (no waiting: an entry that does not fit is
dropped and counted); one task takes them off in batches and hands each batch to a sink in
a worker thread:
- `DirectorySink` (PAYLOAD_LOG_DIR): gzip-compressed JSON lines, a new file past a size or an
  age. A file is written under a hidden name and renamed when complete, so a reader only ever
  sees whole files.
- `CloudEventsSink` (PAYLOAD_LOG_URL): two CloudEvents per request in binary mode, as KServe's
  inference logger sends them: `ce-type` `org.kubeflow.serving.inference.request` with the
  rows, then `...response` with the predictions, both with `ce-id` the request id.

On shutdown the task drains the queue and closes the sink, after the server has finished the
requests in flight, so a SIGTERM loses nothing that was answered.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from app.ops.logs import utc_stamp

logger = logging.getLogger(__name__)

BATCH = 256
"""Entries written per hand-over to the sink, at most."""
LINGER_SECONDS = 0.05
"""How long entries gather before a hand-over of fewer than `BATCH`: a hand-over to the
writing thread costs tens of microseconds, more than writing a few entries."""
CE_SOURCE = "tabserve"
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


class Sink(Protocol):
    def prepare(self, entry: dict[str, Any]) -> Any:
        """What the queue holds for `entry` until it is written; called on the event loop as
        the request ends."""

    def write(self, items: Sequence[Any]) -> None:
        """Write prepared entries, in a worker thread."""

    def close(self) -> None: ...


class PayloadLog:
    """The queue and the task that empties it into `sink`. The queue is bounded in rows, not
    entries: one request may carry thousands, and the memory is what must stay bounded."""

    def __init__(
        self, sink: Sink, capacity_rows: int, on_drop: Callable[[], None] | None = None
    ) -> None:
        self.sink = sink
        self.capacity_rows = capacity_rows
        self._queue: deque[tuple[int, Any]] = deque()  # (rows, prepared entry)
        self._queued_rows = 0
        self._ready = asyncio.Event()
        self._on_drop = on_drop
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One thread writes every batch, so the sink is only ever used from it.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payload-log")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="payload-log")

    def submit(self, entry: dict[str, Any]) -> None:
        """Queue `entry`, or drop it (counted) when its rows would not fit: never wait."""
        rows = len(entry.get("instances", ()))
        if self._queued_rows + rows > self.capacity_rows:
            if self._on_drop is not None:
                self._on_drop()
            return
        self._queue.append((rows, self.sink.prepare(entry)))
        self._queued_rows += rows
        self._ready.set()

    async def close(self) -> None:
        """Write what is queued, then close the sink."""
        if self._task is not None:
            self._closing = True
            self._ready.set()
            await self._task
        await asyncio.get_running_loop().run_in_executor(self._writer, self.sink.close)
        self._writer.shutdown()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            if len(self._queue) < BATCH and not self._closing:
                await asyncio.sleep(LINGER_SECONDS)
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self.sink.write, [item for _, item in batch]
                )
            except Exception:  # a sink's failure must not stop the service or the log
                logger.exception("payload log: %d entries could not be written", len(batch))
                if self._on_drop is not None:
                    for _ in batch:
                        self._on_drop()
            finally:
                # Rows count against the bound until written: they are in memory till then.
                self._queued_rows -= sum(rows for rows, _ in batch)


def entry(
    request_id: str,
    model_name: str,
    model_version: int,
    rows: Sequence[Mapping[str, object]],
    answer: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "id": request_id,
        "time": utc_stamp(time.time()),
        "model_name": model_name,
        "model_version": model_version,
        "instances": rows,
        **answer,
    }


class DirectorySink:
    """Gzip-compressed JSON lines under `directory`, one file per `max_bytes` of JSON or
    `max_seconds` of age, whichever comes first."""

    def __init__(self, directory: Path, max_bytes: int, max_seconds: float) -> None:
        self.directory = directory
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        directory.mkdir(parents=True, exist_ok=True)
        self._file: gzip.GzipFile | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._bytes = 0
        self._sequence = 0

    @staticmethod
    def prepare(entry: dict[str, Any]) -> bytes:
        """The entry's JSON line, made at once: a queue of bytes objects, rather than of the
        rows' dicts and floats, keeps far fewer objects alive until the write, and objects
        kept alive slow every allocation of the request path."""
        return orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)

    def write(self, items: Sequence[bytes]) -> None:
        data = b"".join(items)
        if self._file is not None and (
            self._bytes >= self.max_bytes or time.monotonic() - self._opened >= self.max_seconds
        ):
            self.close()
        file = self._file or self._open()
        file.write(data)
        self._bytes += len(data)

    def close(self) -> None:
        """Finish the current file and give it its final name."""
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._path.rename(self._path.with_name(self._path.name.removeprefix(".")))
        self._file = self._path = None

    def _open(self) -> gzip.GzipFile:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f".requests-{stamp}-{os.getpid()}-{self._sequence:04d}.jsonl.gz"
        self._path = self.directory / name
        # Level 1: several times faster than the default 9 for JSON lines, for a few % more bytes.
        self._file = gzip.GzipFile(self._path, "wb", compresslevel=1)
        self._opened, self._bytes = time.monotonic(), 0
        return self._file


class CloudEventsSink:
    """POSTs each entry as two CloudEvents (request, then response) in binary mode."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"PAYLOAD_LOG_URL must be an http(s) URL, not {url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = parts.path or "/"
        if parts.query:
            self._path += f"?{parts.query}"
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    @staticmethod
    def prepare(entry: dict[str, Any]) -> dict[str, Any]:
        return entry

    def write(self, items: Sequence[Mapping[str, Any]]) -> None:
        for e in items:
            request = {"instances": e["instances"]}
            response = {k: v for k, v in e.items() if k not in ("instances", "id", "time")}
            for kind, body in ((REQUEST_TYPE, request), (RESPONSE_TYPE, response)):
                self._post(e, kind, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post(self, e: Mapping[str, Any], kind: str, body: bytes) -> None:
        headers = {
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": str(e["id"]),
            "ce-type": kind,
            "ce-source": CE_SOURCE,
            "ce-time": str(e["time"]),
            "ce-inferenceservicename": str(e["model_name"]),
            "ce-modelversion": str(e["model_version"]),
        }
        for attempt in (1, 2):  # a kept-alive connection the receiver closed: open a new one
            connection = self._connect()
            try:
                connection.request("POST", self._path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            if answer.status >= 300:
                raise OSError(f"PAYLOAD_LOG_URL answered {answer.status} {answer.reason}")
            return

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection
