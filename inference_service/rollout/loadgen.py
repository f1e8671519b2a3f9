"""Bounded loopback load for canary analysis (Flagger's load-tester, locally) and for rollout rehearsals: v2
requests built from the dataset's test rows, sent by a few threads, counted by answering revision and status.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import numpy as np

from inference_service.runtime.revision_http import HEADER
from inference_service.runtime.tensors import INPUT
from platform_core.errors import PlatformError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0  # 5xx or no answer
    by_revision: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # the first few, for the report
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, revision: str, status: int, problem: str | None = None) -> None:
        with self.lock:
            self.sent += 1
            self.by_revision[revision] += 1
            self.by_status[status] += 1
            if status >= 500 or status == 0:
                self.failed += 1
                if len(self.failures) < 5:
                    self.failures.append(problem or f"HTTP {status} from {revision}")


def sample_rows(model_name: str | None = None) -> np.ndarray:
    """Feature rows to send: the test split of the dataset the model was trained on (named by its serving
    bundle; real inputs make the class mix real), or of PLATFORM_DATASET when no revision of it is local."""
    from ml_platform.dataset import load_splits

    rows = load_splits(dataset=_dataset_of(model_name) if model_name else None).x_test
    if not len(rows):
        raise PlatformError("the published dataset has no test rows to send", "run `task etl`")
    return rows


def _dataset_of(model_name: str) -> str | None:
    from inference_service.rollout import revisions
    from platform_core.bundle import read_bundle

    state = revisions.load(model_name)
    for rev in reversed(state.revisions):
        try:
            return read_bundle(revisions.bundle_dir(model_name, rev.name)).get("dataset")
        except PlatformError:
            continue  # that revision's bundle is gone: an older one names the same dataset
    return None


BATCH = 8  # rows per request: the prediction-shift check counts rows, and 8 per request keep its noise low


def _request(rows: np.ndarray, rng: random.Random) -> dict:
    picked = rows[[rng.randrange(len(rows)) for _ in range(BATCH)]]
    return {"inputs": [{"name": INPUT, "datatype": "FP32", "shape": list(picked.shape),
                        "data": picked.ravel().tolist()}]}  # fmt: skip


class Load:
    """`threads` clients posting to `url` until stopped (or `until(tally)` holds, or the bounds are hit)."""

    def __init__(
        self, url: str, model_name: str, rows: np.ndarray, threads: int = 3, rate: float | None = None,
        until: Callable[[Tally], bool] | None = None, max_requests: int = 5000, max_seconds: float = 60.0,
    ):  # fmt: skip
        if urlparse(url).hostname not in LOOPBACK:
            raise PlatformError(f"generated load goes to loopback only, not {url}", "send real traffic instead")
        self.url = f"{url.rstrip('/')}/v2/models/{model_name}/infer"
        self.rows, self.threads, self.rate = rows, threads, rate
        self.until, self.max_requests, self.max_seconds = until, max_requests, max_seconds
        self.tally = Tally()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _done(self, started: float) -> bool:
        return (
            self._stop.is_set()
            or self.tally.sent >= self.max_requests
            or time.monotonic() - started > self.max_seconds
            or (self.until is not None and self.until(self.tally))
        )

    def _work(self, seed: int) -> None:
        rng, started = random.Random(seed), time.monotonic()
        pause = self.threads / self.rate if self.rate else 0.0
        with httpx.Client(timeout=10) as client:
            while not self._done(started):
                try:
                    answer = client.post(self.url, json=_request(self.rows, rng))
                    self.tally.add(answer.headers.get(HEADER.decode(), "?"), answer.status_code)
                except httpx.HTTPError as exc:
                    self.tally.add("?", 0, f"{type(exc).__name__}: {exc}")
                if pause:
                    time.sleep(pause)

    def start(self) -> Load:
        self._workers = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def wait(self) -> Tally:
        for worker in self._workers:
            worker.join()
        return self.tally

    def stop(self) -> Tally:
        self._stop.set()
        return self.wait()

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
