"""MLflow logging of a search, done by the driver in a background thread, and the lineage every run carries.

Why not inside the trials: `log_model` is ~85% of the logging cost (19 HTTP requests) and importing mlflow costs a
worker ~3 s. Here each trial reports to Tune only; the driver queues what a trial produced when it ends and one
thread writes it while the next trials train:

- one child run per trial, created when the trial ends, with its params, every round's validation metrics and
  the final metrics in one `log_batch`, lineage tags, and its model (to S3 through MLflow) only if it finished;
- ASHA-stopped trials end KILLED, errored ones FAILED, and a run whose logging fails ends FAILED in `finally`:
  no trial run stays RUNNING.

Tune pickles its callbacks (for `Tuner.restore`), so the callback holds only a key; the live logger, progress bar
and backend watch of this process are looked up by that key (the parent run id, stable across a resume).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_platform.ray_env  # noqa: F401  (before ray is imported)

# isort: split

from ray import tune

from ml_platform.trial import CHECKPOINT_FILE, FINAL
from platform_core import runs, settings

log = logging.getLogger(__name__)
LOG_THREADS = 4

# Lineage tag names (trial runs, parent runs and model versions carry them).
DATASET, DATASET_VERSION, DATASET_HASH = "lineage.dataset", "lineage.dataset_version", "lineage.dataset_hash"
GIT_COMMIT, CONFIG_HASH, PARENT_RUN, SEED = (
    "lineage.git_commit", "lineage.search_config_hash", "lineage.parent_run", "lineage.seed",
)  # fmt: skip
TRIAL_ID = "ray.trial_id"
LINEAGE_KEYS = (DATASET, DATASET_VERSION, DATASET_HASH, GIT_COMMIT, CONFIG_HASH, PARENT_RUN, SEED)


def git_commit() -> str:
    """The code's commit (`+dirty` when the tree has changes), or `unknown` outside git."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=settings.REPO_ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=5, check=True).stdout.strip()  # fmt: skip
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return f"{commit}+dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lineage_tags(dataset: str, version: int, content_hash: str, config_hash: str, seed: int, parent: str) -> dict:
    return {DATASET: dataset, DATASET_VERSION: str(version), DATASET_HASH: content_hash, GIT_COMMIT: git_commit(),
            CONFIG_HASH: config_hash, SEED: str(seed), PARENT_RUN: parent}  # fmt: skip


@dataclass
class _Job:
    trial_id: str
    params: dict[str, Any]
    rounds: list[dict[str, float]]
    final: dict[str, float]
    status: str  # FINISHED | KILLED | FAILED
    checkpoint: Any  # a tune.Checkpoint of a finished trial, else None


@dataclass
class TrialLogger:
    """Writes trial runs to MLflow from a background thread of the driver."""

    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]
    fixed_params: dict[str, Any]
    requirements: list[str]
    logged: dict[str, str] = field(default_factory=dict)  # trial id -> run id
    failures: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._rounds: dict[str, list[dict[str, float]]] = {}
        self._queued: set[str] = set()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._abandoned = threading.Event()
        # Several writers: a trial's logging is ~20 HTTP round trips (mostly log_model), I/O-bound; one writer
        # fell behind 2 trial slots and made the search wait for it at the end.
        self._threads = [threading.Thread(target=self._work, name=f"mlflow-trial-logger-{i}", daemon=True)
                         for i in range(LOG_THREADS)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def on_round(self, trial_id: str, result: dict) -> None:
        if FINAL not in result:
            metrics = {k: float(result[k]) for k in ("valid_mlogloss", "valid_accuracy") if k in result}
            if "timestamp" in result:
                metrics["timestamp"] = float(result["timestamp"])
            self._rounds.setdefault(trial_id, []).append(metrics)

    def on_end(self, trial_id: str, config: dict, last: dict | None, checkpoint: Any, errored: bool,
               rounds: list[dict[str, float]] | None = None) -> None:  # fmt: skip
        if trial_id in self.logged or trial_id in self._queued:
            return
        self._queued.add(trial_id)
        finished = bool(last and FINAL in last) and not errored
        status = "FAILED" if errored else ("FINISHED" if finished else "KILLED")
        keys = ("valid_mlogloss", "valid_accuracy", "rounds") if finished else ()
        final = {k: float(last[k]) for k in keys if k in last}
        self._queue.put(_Job(trial_id, {**config, **self.fixed_params}, rounds or self._rounds.pop(trial_id, []),
                             final, status, checkpoint if finished else None))  # fmt: skip

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if not self._abandoned.is_set():
                try:
                    self.logged[job.trial_id] = self._log(job)
                except Exception as exc:  # noqa: BLE001 - recorded; the search decides what a failure means
                    self.failures.append(f"{job.trial_id}: {exc}")
                    log.warning("logging trial %s failed: %s", job.trial_id, exc)

    def _log(self, job: _Job) -> str:
        import mlflow.xgboost
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient()
        tags = {"mlflow.parentRunId": self.parent_run_id, TRIAL_ID: job.trial_id, **self.tags, **runs.owner_tags()}
        run = client.create_run(self.experiment_id, tags=tags, run_name=f"trial-{job.trial_id.rsplit('_', 1)[-1]}")
        run_id, status = run.info.run_id, "FAILED"
        try:
            # Per-round curves under `round.<metric>` (step = boosting round); the final metrics (of the rounds kept)
            # under their plain names, so "latest value" of valid_mlogloss is always the model's own.
            ts = run.info.start_time
            metrics = [
                Metric(f"round.{k}", v, int(m.get("timestamp", ts / 1000) * 1000), step)
                for step, m in enumerate(job.rounds, 1)
                for k, v in m.items()
                if k != "timestamp"
            ]
            metrics += [Metric(k, v, ts, 0) for k, v in job.final.items()]
            params = [Param(k, str(v)) for k, v in job.params.items()]
            for i in range(0, max(len(metrics), 1), 1000):  # MLflow's per-request limits: 1000 metrics, 100 params
                client.log_batch(run_id, metrics=metrics[i : i + 1000], params=params if i == 0 else [])
            if job.checkpoint is not None:
                import xgboost as xgb

                with job.checkpoint.as_directory() as local:  # local path here; downloaded from S3 on a cluster
                    booster = xgb.Booster(model_file=str(Path(local) / CHECKPOINT_FILE))
                # Explicit requirements and no input example: inference costs ~7 s, examples add uploads.
                mlflow.xgboost.log_model(booster, name="model", pip_requirements=self.requirements, run_id=run_id)
            status = job.status
        finally:
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status=status)
        return run_id

    def close(self, timeout: float = 120.0) -> None:
        """Let queued trials be written (the search's end waits for them)."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def abandon(self) -> None:
        """The backend is gone: write nothing more (queued trials get no run, so none is left RUNNING)."""
        self._abandoned.set()
        for _ in self._threads:
            self._queue.put(None)


# Live driver-side objects of this process, by search key; callbacks look them up (see module docstring).
LIVE: dict[str, dict[str, Any]] = {}


class LiveCallback(tune.Callback):
    """Forwards Tune's trial events to this process's live logger / progress bar, found by key."""

    def __init__(self, key: str):
        self.key = key

    def _get(self, name: str) -> Any:
        return LIVE.get(self.key, {}).get(name)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if logger := self._get("logger"):
            logger.on_round(trial.trial_id, result)

    def _end(self, trial, errored: bool) -> None:
        if logger := self._get("logger"):
            logger.on_end(trial.trial_id, dict(trial.config), trial.last_result, trial.checkpoint, errored)
        advance: Callable[[], None] | None = self._get("advance")
        if advance:
            advance()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, errored=True)
