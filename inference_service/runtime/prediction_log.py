"""An optional, sampled log of what the served model saw and answered, as JSON lines in the state dir.

One line per sampled request: time, model, version, request id, row count, the predicted label counts of all
rows (what a drift check or the canary's prediction-distribution comparison needs) and the first rows' inputs
and labels (bounded, so a 100k-row batch writes a small line). Off by default (PLATFORM_SERVE_PREDICTION_LOG_RATE).
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import numpy as np

SAMPLE_ROWS = 16


class PredictionLog:
    def __init__(self, path: Path, rate: float, seed: int | None = None):
        self.path, self.rate = path, rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # big batches are answered on worker threads
        self._file = None
        if rate > 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", buffering=1)  # line-buffered: a reader sees whole lines

    def record(self, model: str, version: str, request_id: str, features: np.ndarray, labels: np.ndarray,
               classes: list[str]) -> None:  # fmt: skip
        if self._file is None or self._random.random() >= self.rate:
            return
        counts = np.bincount(labels, minlength=len(classes))
        line = {
            "ts": round(time.time(), 3), "model": model, "version": version, "id": request_id, "rows": len(labels),
            "label_counts": {c: int(n) for c, n in zip(classes, counts, strict=True)},
            "inputs": features[:SAMPLE_ROWS].tolist(), "labels": [classes[i] for i in labels[:SAMPLE_ROWS]],
        }  # fmt: skip
        text = json.dumps(line, allow_nan=True) + "\n"
        with self._lock:
            self._file.write(text)
