"""Small concurrent predictions answered by one booster call (dynamic batching with no added wait, as Triton's
dynamic batcher does with a zero queue delay).

A booster call costs ~65 us inside libxgboost whatever the batch (measured: its thread-limit lookup, config
parse and tree views per call), so for batch-1 requests it is about a third of a request's time. Requests that
reach the event loop together (the requests of several connections read in one poll) are already waiting on it:
the first one schedules a flush for the loop's next pass, the others join it, and the flush predicts all their
rows in one call and hands each request its own rows. Nothing waits for a batch to fill: a lone request is
predicted one loop pass later.

Each row's answer is the same whatever rows it is predicted with (XGBoost's CPU predictor sums every row's trees
in tree order, independently of the other rows; tests/model/test_coalesce.py holds them equal bit for bit), and
rows of FP32 and FP64 requests are joined as float64, which is exact for both (libxgboost reads every value as a
float32).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

MAX_ROWS = 256  # larger requests are predicted on their own (their fixed cost is small next to their rows)


class Coalescer:
    """`await coalescer(features)` -> `predict(features)`, with concurrent calls sharing one `predict`."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_rows: int = MAX_ROWS) -> None:
        self._predict = predict
        self.max_rows = max_rows
        self._waiting: list[tuple[np.ndarray, asyncio.Future]] = []
        self.calls = 0  # booster calls made by flushes (what the tests look at)

    async def __call__(self, features: np.ndarray) -> np.ndarray:
        if len(features) > self.max_rows:
            return self._predict(features)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((features, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        waiting = [(f, fut) for f, fut in waiting if not fut.cancelled()]  # (a client that went away)
        if not waiting:
            return
        self.calls += 1
        try:
            if len(waiting) == 1:
                parts = [self._predict(waiting[0][0])]
            else:
                joined = self._predict(np.concatenate([f for f, _ in waiting], dtype=_dtype(waiting)))
                ends = np.cumsum([len(f) for f, _ in waiting])
                parts = np.split(joined, ends[:-1])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure, none hangs
            for _, future in waiting:
                future.set_exception(exc)
            return
        for (_, future), part in zip(waiting, parts, strict=True):
            future.set_result(part)


def _dtype(waiting) -> np.dtype:
    kinds = {f.dtype for f, _ in waiting}
    return kinds.pop() if len(kinds) == 1 else np.dtype(np.float64)
