"""`python -m benchmarks.grpc_load`: the gRPC load generator, the benchmark's wrk for gRPC.

ghz could not be installed here, so this is a grpc.aio client in a process of its own (pinned
to the client CPU, as wrk is): one channel to 127.0.0.1 (one HTTP/2 connection, as ghz's
default) with `--concurrency` calls in flight, each sending its next call as soon as the last
is answered (closed loop, like wrk's connections). Every call sends the same bytes, a
serialized request read from `--request`, and no answer is parsed (wrk sends one body and
parses no answer either); the benchmark checks the answers once beforehand. It stops by itself
at the end of `--duration` (calls still in flight are cancelled and not counted, as wrk stops)
or once `--max-requests` calls were sent, whichever comes first, and prints one line:
`BENCH_RESULT {json}` with the calls answered in the window, errors by status code,
requests/s, latency percentiles in ms, and the CPU seconds it used itself.

`run_grpc_load` (the benchmark's side) runs it and reads that line into a `Measurement`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from benchmarks.process import HOST
from benchmarks.wrk import MARKER, MIN_REQUEST_TIMEOUT_S, Load, Measurement, run_summary

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
GENERATOR = (
    "python -m benchmarks.grpc_load (ghz is not available here): a grpc.aio client in its own "
    "process, pinned like wrk, one channel with as many calls in flight as wrk has "
    "connections; v2 ModelInfer, one FP32 [N, 10] tensor in raw_input_contents"
)
"""How the gRPC figures were measured, for the report and the JSON."""
MAX_REQUESTS = 10_000_000
"""The default budget of calls: far more than a window's worth here, a bound all the same."""
CONNECT_TIMEOUT_S = 10.0
TRANSPORT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
"""Statuses that wrk would see as socket errors (no connection, timeout); any other status
but OK is an answer with an error, wrk's non-2xx."""


@dataclass(frozen=True)
class GrpcMeasurement(Measurement):
    """A `Measurement` of gRPC calls: `non_2xx` counts calls answered with a status other than
    OK outside `TRANSPORT_CODES`, `socket_errors` those inside."""

    errors_by_code: dict[str, int]
    client_cpu_share: float
    """CPU the generator used over its window, in CPUs: near 1 (pinned), it was the limit."""


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values sorted ascending (0.0 if there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(
    latencies_s: list[float], codes: Counter[str], seconds: float, cpu_s: float
) -> dict[str, Any]:
    """The printed figures of one run: calls answered in `seconds` (any status), their
    latencies (seconds) and status codes, and the generator's own CPU seconds."""
    ordered = sorted(latencies_s)
    requests = len(ordered)
    errors = {code: n for code, n in sorted(codes.items()) if code != "OK"}

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return {
        "seconds": round(seconds, 3),
        "requests": requests,
        "errors": sum(errors.values()),
        "errors_by_code": errors,
        "requests_per_s": requests / seconds if seconds > 0 else 0.0,
        "latency_p50_ms": ms(percentile(ordered, 0.50)),
        "latency_p90_ms": ms(percentile(ordered, 0.90)),
        "latency_p99_ms": ms(percentile(ordered, 0.99)),
        "latency_max_ms": ms(ordered[-1] if ordered else 0.0),
        "latency_mean_ms": ms(sum(ordered) / requests if requests else 0.0),
        "client_cpu_s": round(cpu_s, 3),
    }


async def drive(
    port: int,
    request: bytes,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Keep `concurrency` ModelInfer calls in flight on 127.0.0.1:`port` for `seconds` or
    `max_requests` calls; the figures of the calls answered within the window."""
    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        # Bytes in, bytes out: nothing serialized or parsed per call.
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(MODEL_INFER)
        latencies: list[float] = []
        codes: Counter[str] = Counter()
        sent = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        deadline = started + seconds

        async def caller() -> None:
            nonlocal sent
            while sent < max_requests:
                sent += 1
                begun = time.perf_counter()
                try:
                    await call(request, timeout=timeout_s)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                ended = time.perf_counter()
                if ended > deadline:
                    return
                latencies.append(ended - begun)
                codes[code] += 1

        tasks = [asyncio.create_task(caller()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        window = min(time.perf_counter(), deadline) - started
        figures = summarise(latencies, codes, window, time.process_time() - cpu_started)
    return {
        "concurrency": concurrency,
        "sent": sent,
        "stopped_by": "budget" if not pending else "window",
        **figures,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.grpc_load", description=__doc__.split("\n")[0]
    )
    p.add_argument("--port", type=int, required=True, help=f"gRPC port on {HOST}")
    p.add_argument("--request", type=Path, required=True, help="serialized ModelInferRequest")
    p.add_argument("--concurrency", type=int, default=16, help="calls in flight (16)")
    p.add_argument("--duration", type=int, default=10, help="seconds of load (10)")
    p.add_argument(
        "--max-requests", type=int, default=MAX_REQUESTS, help=f"calls at most ({MAX_REQUESTS:,})"
    )
    p.add_argument(
        "--timeout",
        type=float,
        help=f"seconds a call may take (default {MIN_REQUEST_TIMEOUT_S} or --duration, if longer)",
    )
    args = p.parse_args(argv)
    for name in ("port", "concurrency", "duration", "max_requests"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.timeout = args.timeout or max(MIN_REQUEST_TIMEOUT_S, args.duration)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load and print `BENCH_RESULT {json}`; 2 if the server cannot be reached."""
    args = parse_args(argv)
    request = args.request.read_bytes()
    try:
        result = asyncio.run(
            drive(
                args.port,
                request,
                concurrency=args.concurrency,
                seconds=args.duration,
                max_requests=args.max_requests,
                timeout_s=args.timeout,
            )
        )
    except TimeoutError:
        where = f"{HOST}:{args.port}"
        print(f"no gRPC server on {where} within {CONNECT_TIMEOUT_S:g} s", file=sys.stderr)
        return 2
    print(MARKER + json.dumps(result), flush=True)
    return 0


# The benchmark's side


def grpc_load_argv(port: int, load: Load, prefix: list[str]) -> list[str]:
    """This module as a process, `prefix` pinning it to a CPU."""
    return [
        *prefix,
        sys.executable,
        "-m",
        "benchmarks.grpc_load",
        f"--port={port}",
        f"--request={load.body}",
        f"--concurrency={load.connections}",
        f"--duration={load.seconds}",
    ]


def run_grpc_load(port: int, load: Load, prefix: list[str]) -> GrpcMeasurement:
    """Run the generator against `port` with the request in `load.body` (`prefix` pins it to a
    CPU) and return its figures; WrkFailed if it printed none."""
    raw = run_summary(grpc_load_argv(port, load, prefix), load.seconds + 60, what="grpc_load")
    codes: dict[str, int] = raw["errors_by_code"]
    transport = sum(n for code, n in codes.items() if code in TRANSPORT_CODES)
    seconds = raw["seconds"]
    return GrpcMeasurement(
        connections=load.connections,
        rows_per_request=load.rows,
        seconds=seconds,
        requests=raw["requests"],
        requests_per_s=raw["requests_per_s"],
        rows_per_s=raw["requests_per_s"] * load.rows,
        latency_p50_ms=raw["latency_p50_ms"],
        latency_p90_ms=raw["latency_p90_ms"],
        latency_p99_ms=raw["latency_p99_ms"],
        latency_max_ms=raw["latency_max_ms"],
        latency_mean_ms=raw["latency_mean_ms"],
        non_2xx=raw["errors"] - transport,
        socket_errors=transport,
        errors_by_code=codes,
        client_cpu_share=round(raw["client_cpu_s"] / seconds, 3) if seconds > 0 else 0.0,
    )


if __name__ == "__main__":
    sys.exit(main())
