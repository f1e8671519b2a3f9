"""inference_service/runtime/coalesce.py predicts concurrent small requests in one booster call. These tests hold
every request's answer bit-equal to predicting its rows alone (both objectives, FP32 and FP64 requests mixed,
rows on the trees' split thresholds and missing values), and check that a failure or a cancelled request
leaves no other request waiting."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import xgboost as xgb

from inference_service.runtime.coalesce import Coalescer
from inference_service.runtime.xgboost_seam import DensePredict
from tests.model.ml_support import hard_rows, objective_boosters


@pytest.fixture(scope="module")
def predictors():
    return objective_boosters()


def _requests(booster: xgb.Booster, data: np.ndarray) -> list[np.ndarray]:
    """Requests as clients send them: batch sizes 1 to 256, FP32 and FP64, values exactly on split thresholds and
    one float32 step below them, missing values, the training rows."""
    rng = np.random.default_rng(0)
    rows = np.concatenate([hard_rows(booster, data), data.astype(np.float32)])
    out, start = [], 0
    for i, size in enumerate(rng.choice([1, 1, 1, 2, 5, 17, 256], size=60)):
        part = rows[start % len(rows) : start % len(rows) + size]
        out.append(part.astype(np.float64) if i % 3 == 0 else np.ascontiguousarray(part))
        start += size
    return out


@pytest.mark.parametrize("objective", ["multi:softprob", "binary:logistic"])
def test_each_request_gets_what_its_rows_alone_would(predictors, objective):
    booster, data = predictors[objective]
    predict = DensePredict(booster)
    requests = _requests(booster, data)
    coalescer = Coalescer(predict)

    async def together():
        return await asyncio.gather(*[coalescer(r) for r in requests])

    answers = asyncio.run(together())
    assert coalescer.calls == 1, "requests waiting on the loop together were not predicted in one call"
    for rows, answer in zip(requests, answers, strict=True):
        alone = predict(rows)
        assert answer.shape == alone.shape and answer.dtype == alone.dtype
        assert np.array_equal(answer.view(np.uint32), alone.view(np.uint32)), "a coalesced answer differs"


def test_requests_over_the_row_limit_are_predicted_alone(predictors):
    booster, data = predictors["multi:softprob"]
    coalescer = Coalescer(DensePredict(booster), max_rows=4)
    small, big = data[:2].astype(np.float32), data[:10].astype(np.float32)

    async def both():
        return await asyncio.gather(coalescer(small), coalescer(big), coalescer(small))

    answers = asyncio.run(both())
    assert coalescer.calls == 1  # the two small ones; the big one went straight to the booster
    assert [len(a) for a in answers] == [2, 10, 2]


def test_a_lone_request_is_answered_without_waiting_for_company(predictors):
    booster, data = predictors["binary:logistic"]
    coalescer = Coalescer(DensePredict(booster))

    async def one():
        return await asyncio.wait_for(coalescer(data[:1].astype(np.float32)), timeout=1)

    assert asyncio.run(one()).shape == (1,)


def test_a_failed_call_fails_every_request_that_shared_it():
    def broken(features):
        raise RuntimeError("booster failed")

    coalescer = Coalescer(broken)

    async def together():
        return await asyncio.wait_for(
            asyncio.gather(*[coalescer(np.zeros((1, 4), np.float32)) for _ in range(5)], return_exceptions=True), 1
        )

    results = asyncio.run(together())
    assert [type(r) for r in results] == [RuntimeError] * 5


def test_a_cancelled_request_is_left_out_and_the_others_answered(predictors):
    booster, data = predictors["multi:softprob"]
    seen = []

    def predict(features):
        seen.append(len(features))
        return DensePredict(booster)(features)

    coalescer = Coalescer(predict)

    async def one_cancelled():
        tasks = [asyncio.ensure_future(coalescer(data[i : i + 1].astype(np.float32))) for i in range(3)]
        await asyncio.sleep(0)  # all three now wait on the flush
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(one_cancelled())
    assert isinstance(results[1], asyncio.CancelledError)
    assert [r.shape for i, r in enumerate(results) if i != 1] == [(1, 3), (1, 3)]
    assert seen == [2]
