"""Tune stage: a seeded Ray Tune search over XGBoost hyperparameters; every trial is one MLflow run.

Each trial logs its params, its metrics and its model (artifacts go through the MLflow server to S3) inside
try/finally, so a failed trial ends its run as FAILED instead of leaving it RUNNING. Runs are children of one
parent run per search. The best trial is picked on validation log-loss; the test split is only reported.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import ml_platform.ray_env  # noqa: F401  (before ray is imported)

# isort: split

import mlflow
import numpy as np
import ray
import xgboost as xgb
from ray import tune
from ray.tune.search import BasicVariantGenerator

from ml_platform.dataset import Splits, load_splits
from platform_core import health, runs, settings
from platform_core.errors import PlatformError, ServiceUnavailable
from platform_core.progress import progress_bar

# Small and cheap on purpose: small tabular data needs shallow trees; the ranges still show real differences.
SEARCH_SPACE: dict[str, Any] = {
    "max_depth": tune.randint(1, 6),
    "eta": tune.loguniform(0.03, 0.5),
    "subsample": tune.uniform(0.6, 1.0),
    "colsample_bytree": tune.uniform(0.6, 1.0),
    "min_child_weight": tune.loguniform(0.5, 5.0),
    "lambda": tune.loguniform(0.1, 10.0),
}


@dataclass
class TuneResult:
    parent_run_id: str
    best_run_id: str
    best_model_uri: str
    best_params: dict[str, Any]
    best_metrics: dict[str, float]
    trials: int
    seconds: float


def booster_params(config: dict[str, Any], num_class: int, seed: int) -> dict[str, Any]:
    # nthread=1: trials run side by side on 2 cores; more threads per trial only oversubscribe.
    return {
        **{k: v for k, v in config.items() if k in SEARCH_SPACE},
        "objective": "multi:softprob",
        "num_class": num_class,
        "eval_metric": "mlogloss",
        "nthread": 1,
        "seed": seed,
    }


def model_requirements() -> list[str]:
    """The xgboost distribution actually installed (xgboost-cpu here, xgboost elsewhere), pinned."""
    dist = importlib.metadata.packages_distributions().get("xgboost", ["xgboost"])[0]
    return [f"{dist}=={importlib.metadata.version(dist)}"]


def evaluate(booster: xgb.Booster, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    proba = booster.predict(xgb.DMatrix(x))
    eps = 1e-15
    logloss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0))))
    return {"accuracy": float(np.mean(proba.argmax(axis=1) == y)), "mlogloss": logloss}


def _trial(config: dict[str, Any], splits: Splits, tracking_uri: str, experiment_id: str, parent_run_id: str,
           max_rounds: int, seed: int) -> None:  # fmt: skip
    mlflow.set_tracking_uri(tracking_uri)
    params = booster_params(config, len(splits.classes), seed)
    run = mlflow.start_run(experiment_id=experiment_id, tags={"mlflow.parentRunId": parent_run_id, **runs.owner_tags()})
    status = "FAILED"
    try:
        mlflow.log_params({**params, "max_rounds": max_rounds})
        dtrain = xgb.DMatrix(splits.x_train, label=splits.y_train)
        dvalid = xgb.DMatrix(splits.x_valid, label=splits.y_valid)
        booster = xgb.train(
            params, dtrain, num_boost_round=max_rounds, evals=[(dvalid, "valid")],
            early_stopping_rounds=10, verbose_eval=False,
        )  # fmt: skip
        booster = booster[: booster.best_iteration + 1]  # keep only the rounds that helped
        valid = evaluate(booster, splits.x_valid, splits.y_valid)
        test = evaluate(booster, splits.x_test, splits.y_test)
        metrics = {
            "rounds": booster.num_boosted_rounds(),
            **{f"valid_{k}": v for k, v in valid.items()},
            **{f"test_{k}": v for k, v in test.items()},
        }
        mlflow.log_metrics(metrics)
        # Explicit requirements: MLflow otherwise infers them in a subprocess, ~7 s per trial.
        info = mlflow.xgboost.log_model(
            booster, name="model", input_example=splits.x_test[:2], pip_requirements=model_requirements()
        )
        status = "FINISHED"
        tune.report({**metrics, "mlflow_run_id": run.info.run_id, "model_uri": info.model_uri})
    finally:
        mlflow.end_run(status=status)


class _ProgressCallback(tune.Callback):
    """Advances the progress bar per finished trial. Tuner pickles its callbacks for resumption; the live
    display (it holds locks) is not part of that state."""

    def __init__(self, advance):
        self.advance = advance

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.advance = lambda: None

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.advance()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.advance()


class _BackendWatch(tune.Callback, tune.Stopper):
    """Stops the whole search as soon as MLflow or S3 is unreachable: every running and later trial would fail
    the same way, each after its own retries. Checked every few seconds by the Tune loop and whenever a trial
    fails; also a Stopper, so Tune ends the run loop itself."""

    INTERVAL_S = 3.0

    def __init__(self):
        self.lost: ServiceUnavailable | None = None
        self.failed = 0
        self._last_check = 0.0

    def __getstate__(self):  # Tuner pickles its callbacks; the live state stays in the driver
        return {"lost": None, "failed": 0, "_last_check": 0.0}

    def _check(self) -> None:
        self._last_check = time.monotonic()
        if self.lost is None:
            try:
                health.require_mlflow()
                health.require_s3()
            except ServiceUnavailable as exc:
                self.lost = exc

    def on_step_begin(self, iteration, trials, **info):
        if time.monotonic() - self._last_check >= self.INTERVAL_S:
            self._check()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed += 1
        self._check()

    def __call__(self, trial_id, result) -> bool:
        return self.lost is not None

    def stop_all(self) -> bool:
        return self.lost is not None


def _log_ray_to_file() -> None:
    """Ray's driver-side messages (trial tracebacks, its token-auth notice) go to <state>/logs/ray.log."""
    path = settings.state_dir() / "logs" / "ray.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_logger = logging.getLogger("ray")
    for old in list(ray_logger.handlers):
        ray_logger.removeHandler(old)
    ray_logger.addHandler(handler)
    ray_logger.setLevel(logging.INFO)
    ray_logger.propagate = False


def init_ray() -> None:
    """Local: an in-process Ray runtime; cluster: whatever PLATFORM_RAY_ADDRESS points at (RayJob sets it)."""
    # The legacy reporter honours verbose=0; the new one prints a config box and a results table anyway.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for attempt in (1, 2):
        if ray.is_initialized():
            break
        try:
            ray.init(
                address=settings.RAY_ADDRESS.get(),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,  # which makes ray.init drop the "ray" logger's handlers: set ours after
            )
        except Exception as exc:
            # The raylet gives its metrics agent a hard-coded 15 s to start (ray-project/ray#65983); on a
            # busy 2-core machine that can run out once. The second start finds the imports warm.
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise PlatformError(f"the local Ray runtime did not start: {exc}", "retry; see /tmp/ray") from exc
    _log_ray_to_file()


def _end_parent(status: str) -> None:
    # If MLflow is gone this fails after the bounded retries; `up`/`tune` close the run once it is back.
    with contextlib.suppress(Exception):
        mlflow.end_run(status=status)


def run_tune(lake: str, num_samples: int, max_rounds: int, seed: int) -> TuneResult:
    start = time.monotonic()
    splits = load_splits(lake)
    tracking_uri = settings.tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(settings.EXPERIMENT.get())
    runs.close_orphaned_runs()
    init_ray()
    parent = mlflow.start_run(
        run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}", tags={"stage": "tune", **runs.owner_tags()}
    )
    status = "FAILED"
    try:
        mlflow.log_params({"num_samples": num_samples, "max_rounds": max_rounds, "seed": seed})
        mlflow.set_tags({"dataset": splits.dataset, "dataset_version": splits.version,
                         "dataset_content_hash": splits.content_hash})  # fmt: skip
        trainable = tune.with_parameters(
            _trial, splits=splits, tracking_uri=tracking_uri, experiment_id=experiment.experiment_id,
            parent_run_id=parent.info.run_id, max_rounds=max_rounds, seed=seed,
        )  # fmt: skip
        watch = _BackendWatch()
        with progress_bar(f"Ray Tune: {num_samples} XGBoost trials", total=num_samples) as advance:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space=SEARCH_SPACE,
                tune_config=tune.TuneConfig(
                    metric="valid_mlogloss", mode="min", num_samples=num_samples,
                    search_alg=BasicVariantGenerator(random_state=seed),
                    reuse_actors=True,  # a fresh worker per trial re-imports mlflow + xgboost (~7 s)
                ),
                run_config=tune.RunConfig(
                    name=f"tune-{parent.info.run_id[:8]}",
                    storage_path=str(settings.state_dir() / "ray_results"),
                    verbose=0,
                    callbacks=[_ProgressCallback(advance), watch],
                    stop=watch,
                ),
            )  # fmt: skip
            results = tuner.fit()
        if watch.lost is not None:
            raise ServiceUnavailable(
                f"{watch.lost.message}: the search was stopped ({watch.failed} trial(s) failed)",
                f"{watch.lost.hint}, then run `task tune` again (details: {settings.state_dir() / 'logs' / 'ray.log'})",
            )
        errors = [r for r in results if r.error]
        ok = [r for r in results if not r.error]
        if not ok:
            raise PlatformError(
                f"all {len(errors)} trials failed; first error: {errors[0].error}",
                f"see the trial logs under {results.experiment_path}",
            )
        best = results.get_best_result()
        best_metrics = {k: float(v) for k, v in best.metrics.items() if k.startswith(("valid_", "test_", "rounds"))}
        mlflow.log_metrics({f"best_{k}": v for k, v in best_metrics.items()})
        mlflow.set_tags({"best_run_id": best.metrics["mlflow_run_id"], "failed_trials": len(errors)})
        status = "FINISHED"
    finally:
        _end_parent(status)
    return TuneResult(
        parent_run_id=parent.info.run_id,
        best_run_id=best.metrics["mlflow_run_id"],
        best_model_uri=best.metrics["model_uri"],
        best_params={k: best.config[k] for k in SEARCH_SPACE},
        best_metrics=best_metrics,
        trials=len(ok),
        seconds=round(time.monotonic() - start, 1),
    )
