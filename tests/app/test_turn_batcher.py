"""Batching on a fast runtime: the small requests of one turn of the event loop share one
encoding, model call, drift count and decoding; each caller gets its own rows' answers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from app.bundle import Decoded
from app.errors import InvalidInput
from app.model.drift import DriftMonitor
from app.model.loading import load_predictor
from app.model.predictor import Predictor, Rows
from app.model.runtime import Runtime
from app.model.turn_batcher import TurnBatcher
from tests.helpers.service import serve, settings_for

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class Recording:
    """The real runtime, recording the rows of every call."""

    fast = True

    def __init__(self, runtime: Runtime, *, fail_first: bool = False) -> None:
        self.runtime = runtime
        self.name = "recording"
        self.input_width = runtime.input_width
        self.sizes: list[int] = []
        self.fail_first = fail_first

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        if self.fail_first and len(self.sizes) == 1:
            raise RuntimeError("kernel exploded")
        return self.runtime(x)


def recorded(model_root: Path, name: str = "diabetes", **kwargs: bool) -> Predictor:
    predictor = load_predictor(settings_for(model_root, name))
    return dataclasses.replace(predictor, runtime=Recording(predictor.runtime, **kwargs))


def diabetes_rows(n: int, start: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(start)
    rows: list[dict[str, object]] = [
        {f: float(v) for f, v in zip(FEATURES, rng.normal(0, 0.05, len(FEATURES)), strict=True)}
        for _ in range(n)
    ]
    rows[0]["bp"] = None  # a missing cell goes through the batch too
    return rows


async def together(batcher: TurnBatcher, requests: Sequence[Rows]) -> list[Decoded | BaseException]:
    """Submit every request in the same turn; each one's answer or exception."""
    return list(
        await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    )


def answered(outcome: Decoded | BaseException) -> Decoded:
    assert isinstance(outcome, Decoded), outcome
    return outcome


def sizes(predictor: Predictor) -> list[int]:
    runtime = predictor.runtime
    assert isinstance(runtime, Recording)
    return runtime.sizes


def test_requests_of_one_turn_share_one_call_and_get_what_they_would_alone(
    model_root: Path,
) -> None:
    predictor = recorded(model_root)
    batcher = TurnBatcher(predictor, max_rows=256)
    requests = [diabetes_rows(1 + i % 3, start=i) for i in range(10)]
    answers = asyncio.run(together(batcher, requests))
    assert sizes(predictor) == [sum(len(r) for r in requests)]
    for rows, outcome in zip(requests, answers, strict=True):
        answer = answered(outcome)
        assert len(answer.values) == len(rows)
        np.testing.assert_allclose(answer.values, predictor.predict_rows(rows).values, rtol=1e-6)


def test_a_batch_never_exceeds_max_rows_and_later_turns_get_their_own_calls(
    model_root: Path,
) -> None:
    predictor = recorded(model_root)
    batcher = TurnBatcher(predictor, max_rows=7)

    async def scenario() -> None:
        await together(batcher, [diabetes_rows(3, start=i) for i in range(5)])
        await together(batcher, [diabetes_rows(2)])

    asyncio.run(scenario())
    assert sizes(predictor) == [6, 6, 3, 2]


def test_classes_and_probabilities_are_split_by_request(model_root: Path) -> None:
    predictor = recorded(model_root, "labels")
    names = [f.name for f in predictor.stats.features]
    rng = np.random.default_rng(3)
    numeric = [f for f in names if f != "rooms"]
    requests = [
        [
            {**{f: float(rng.normal()) for f in numeric}, "rooms": rooms}
            for rooms in ("2", "never-seen", None)[: 1 + i % 3]
        ]
        for i in range(6)
    ]
    answers = asyncio.run(together(TurnBatcher(predictor, max_rows=256), requests))
    assert len(sizes(predictor)) == 1
    for rows, outcome in zip(requests, answers, strict=True):
        answer, alone = answered(outcome), predictor.predict_rows(rows)
        assert answer.values == alone.values
        assert answer.probabilities is not None and alone.probabilities is not None
        np.testing.assert_allclose(answer.probabilities, alone.probabilities, rtol=1e-6)


def test_a_value_the_model_cannot_take_fails_its_own_request_only(model_root: Path) -> None:
    predictor = recorded(model_root)
    bad = diabetes_rows(3, start=1)
    bad[2]["bmi"] = 1e39  # finite, beyond float32 once standardised
    good = [diabetes_rows(2, start=2), diabetes_rows(1, start=3)]
    answers = asyncio.run(together(TurnBatcher(predictor, max_rows=256), [good[0], bad, good[1]]))
    assert isinstance(answers[1], InvalidInput)
    assert answers[1].message.startswith("instances[2].bmi: too far from the training data")
    for rows, outcome in ((good[0], answers[0]), (good[1], answers[2])):
        expected = predictor.predict_rows(rows).values
        np.testing.assert_allclose(answered(outcome).values, expected, rtol=1e-6)
    alone = asyncio.run(together(TurnBatcher(predictor, max_rows=256), [bad]))
    assert isinstance(alone[0], InvalidInput)
    assert alone[0].message.startswith("instances[2].bmi")


def test_a_failed_call_fails_its_callers_and_the_next_turn_is_served(model_root: Path) -> None:
    predictor = recorded(model_root, fail_first=True)
    batcher = TurnBatcher(predictor, max_rows=256)

    async def scenario() -> tuple[list[Decoded | BaseException], list[Decoded | BaseException]]:
        first = await together(batcher, [diabetes_rows(1), diabetes_rows(2)])
        return first, await together(batcher, [diabetes_rows(1)])

    first, second = asyncio.run(scenario())
    assert all(isinstance(a, RuntimeError) and "kernel exploded" in str(a) for a in first)
    assert len(answered(second[0]).values) == 1


def test_drift_counts_every_row_of_the_batch_once(model_root: Path) -> None:
    predictor = recorded(model_root)
    assert predictor.reference is not None
    drift = DriftMonitor(predictor.stats, predictor.reference, window_rows=1000)
    seen: list[int] = []
    batcher = TurnBatcher(predictor, max_rows=256, on_batch=seen.append, drift=drift)
    requests = [diabetes_rows(1 + i % 4, start=i) for i in range(12)]
    asyncio.run(together(batcher, requests))
    total = sum(len(r) for r in requests)
    assert seen == [total]
    assert drift.report()["rows"] == total


def test_the_service_batches_litert_per_turn_and_a_caller_gone_is_skipped(
    model_root: Path,
) -> None:
    with serve(model_root) as client:
        served = client.app.state.service.models["diabetes"]  # type: ignore[attr-defined]
        assert isinstance(served.inference.batcher, TurnBatcher)
        row = diabetes_rows(1)[0]
        answer = client.post("/predict", json={"instances": [row]})
        assert answer.status_code == 200
        expected = served.predictor.predict_rows([row]).values
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-6)

    predictor = recorded(model_root)
    batcher = TurnBatcher(predictor, max_rows=256)

    async def cancelled_then_served() -> Decoded:
        gone = asyncio.ensure_future(batcher.submit(diabetes_rows(1)))
        await asyncio.sleep(0)  # submitted: its rows wait for the end of the turn
        gone.cancel()
        kept = await batcher.submit(diabetes_rows(2))
        with pytest.raises(asyncio.CancelledError):
            await gone
        return kept

    kept = asyncio.run(cancelled_then_served())
    assert len(kept.values) == 2
