"""Adaptive batching: concurrent requests share model calls, each caller gets its own rows."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.model.inference import Batcher
from tests.helpers.service import serve


class SlowDouble:
    """A stand-in model: doubles its input, records batch sizes, first call blocks a while."""

    def __init__(self, first_call_seconds: float = 0.05) -> None:
        self.sizes: list[int] = []
        self.threads: set[int] = set()
        self.first = first_call_seconds

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        self.threads.add(threading.get_ident())
        if len(self.sizes) == 1:
            time.sleep(self.first)
        return x * 2


def rows(i: int, n: int) -> np.ndarray:
    return np.full((n, 2), float(i), dtype=np.float32)


async def submit_all(
    batcher: Batcher, inputs: list[np.ndarray], gap: float = 0.0
) -> list[np.ndarray]:
    async def one(k: int, x: np.ndarray) -> np.ndarray:
        await asyncio.sleep(gap * k)
        return await batcher.submit(x)

    return list(await asyncio.gather(*(one(k, x) for k, x in enumerate(inputs))))


def test_requests_arriving_during_a_call_share_the_next_one() -> None:
    model = SlowDouble()
    batcher = Batcher(model, max_rows=1000, timeout=0)
    inputs = [rows(i, 1 + i % 3) for i in range(12)]
    results = asyncio.run(submit_all(batcher, inputs, gap=0.001))
    batcher.close()
    for x, out in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(out, x * 2)
    assert sum(model.sizes) == sum(len(x) for x in inputs)
    assert model.sizes[0] == 1, "the first request does not wait when the timeout is 0"
    assert len(model.sizes) == 2, f"the rest coalesce while the first call runs: {model.sizes}"
    assert len(model.threads) == 1, "one worker thread makes every call"


def test_batches_never_exceed_the_maximum_but_a_big_request_goes_alone() -> None:
    model = SlowDouble()
    batcher = Batcher(model, max_rows=4, timeout=0)
    inputs = [rows(0, 1)] + [rows(i, 1) for i in range(1, 10)] + [rows(99, 9)]
    results = asyncio.run(submit_all(batcher, inputs, gap=0.001))
    batcher.close()
    assert [len(r) for r in results] == [len(x) for x in inputs]
    assert all(size <= 4 for size in model.sizes if size != 9)
    assert 9 in model.sizes


def test_idle_model_waits_for_company_up_to_the_timeout() -> None:
    model = SlowDouble(first_call_seconds=0)
    batcher = Batcher(model, max_rows=100, timeout=0.2)
    started = time.perf_counter()
    asyncio.run(submit_all(batcher, [rows(i, 1) for i in range(3)], gap=0.01))
    batcher.close()
    assert model.sizes == [3]
    assert 0.15 < time.perf_counter() - started < 2


def test_a_failing_call_fails_its_callers_and_the_batcher_goes_on() -> None:
    calls = []

    def flaky(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    batcher = Batcher(flaky, max_rows=10, timeout=0)

    async def scenario() -> np.ndarray:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(rows(1, 1))
        return await batcher.submit(rows(2, 1))

    np.testing.assert_array_equal(asyncio.run(scenario()), rows(2, 1))
    batcher.close()


def test_the_service_batches_savedmodel_calls_and_answers_each_request(model_root: Path) -> None:
    row = {"age": 0.02, "sex": 0.05, "bmi": 0.01, "bp": None, "s1": 0.0, "s2": 0.0,
           "s3": -0.01, "s4": 0.0, "s5": 0.02, "s6": 0.0}  # fmt: skip
    bodies = [{"instances": [{**row, "age": 0.01 * i}] * (1 + i % 3)} for i in range(48)]
    with serve(model_root, model_runtime="savedmodel") as client:
        served = client.app.state.service.models["diabetes"]  # type: ignore[attr-defined]
        batcher = served.inference.batcher
        assert batcher is not None, "batching is on for the SavedModel by default"
        sizes: list[int] = []
        batcher._on_batch = sizes.append
        alone = [client.post("/predict", json=b).json()["predictions"] for b in bodies]
        calls_alone = len(sizes)
        with ThreadPoolExecutor(max_workers=16) as pool:
            together = list(pool.map(lambda b: client.post("/predict", json=b).json(), bodies))
    assert calls_alone == len(bodies)
    for body, answer, single in zip(bodies, together, alone, strict=True):
        assert len(answer["predictions"]) == len(body["instances"])
        np.testing.assert_allclose(answer["predictions"], single, rtol=1e-5)
    assert len(sizes) - calls_alone < len(bodies), "concurrent requests shared model calls"
    assert max(sizes) > 3


def test_batching_is_on_by_default_and_can_be_turned_off(model_root: Path) -> None:
    with serve(model_root) as client:
        served = client.app.state.service.models["diabetes"]  # type: ignore[attr-defined]
        assert served.predictor.runtime.name == "litert"
        assert served.inference.batcher is not None
        assert client.get("/readyz").json()["runtime"] == "litert"
    with serve(model_root, batching="off") as client:
        assert client.app.state.service.models["diabetes"].inference.batcher is None  # type: ignore[attr-defined]
        assert client.post("/predict", json={"instances": [{"age": 1}]}).status_code == 422


def test_large_requests_skip_the_batcher(model_root: Path) -> None:
    row = {"age": 0.02, "sex": 0.05, "bmi": 0.01, "bp": None, "s1": 0.0, "s2": 0.0,
           "s3": -0.01, "s4": 0.0, "s5": 0.02, "s6": 0.0}  # fmt: skip
    with serve(model_root) as client:
        batcher = client.app.state.service.models["diabetes"].inference.batcher  # type: ignore[attr-defined]
        sizes: list[int] = []
        batcher._on_batch = sizes.append
        small = client.post("/predict", json={"instances": [row] * 3}).json()["predictions"]
        large = client.post("/predict", json={"instances": [row] * 65}).json()["predictions"]
    assert sizes == [3]
    np.testing.assert_allclose(large, small[0], rtol=1e-6)
