"""Tune stage: a seeded, resumable Ray Tune search over XGBoost hyperparameters (ml_platform/search.yaml).

Trials (ml_platform.trial) train on the train split, report every round's validation metrics to Tune (ASHA stops
the trailing ones) and are chosen on validation only; the test split belongs to the gate. Optuna's seeded TPE
proposes the configurations, `max_concurrent_trials` = the CPUs Ray has. The driver logs each trial as a child
of one parent run per search (ml_platform.tracking) and keeps a small state file so `--resume` after a kill
restores the same Tune experiment (`Tuner.restore`: finished trials are not re-run) and reuses the parent run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_platform.ray_env  # noqa: F401  (before ray is imported)

# isort: split

import mlflow
import ray
from ray import tune

from ml_platform import search_config, tracking
from ml_platform.dataset import Splits, load_splits
from ml_platform.search_config import SearchConfig
from ml_platform.trial import CHECKPOINT_FILE, FINAL, evaluate, train
from platform_core import health, lean_imports, runs, settings
from platform_core.errors import ConfigError, PlatformError, ServiceUnavailable
from platform_core.progress import progress_bar


@dataclass
class TuneResult:
    parent_run_id: str
    best_run_id: str
    best_model_uri: str
    best_params: dict[str, Any]
    best_metrics: dict[str, float]
    trials: int  # every trial of the search
    finished: int  # ran to its end (has a model)
    stopped: int  # stopped early by ASHA
    failed: int
    seconds: float
    config_hash: str = ""
    resumed: bool = False


def model_requirements() -> list[str]:
    """The xgboost distribution actually installed (xgboost-cpu here, xgboost elsewhere), pinned."""
    dist = importlib.metadata.packages_distributions().get("xgboost", ["xgboost"])[0]
    return [f"{dist}=={importlib.metadata.version(dist)}"]


class _BackendWatch(tune.Callback, tune.Stopper):
    """Stops the whole search as soon as MLflow or S3 is unreachable: every running and later trial would fail
    the same way, each after its own retries. Checked every few seconds by the Tune loop and whenever a trial
    fails; also a Stopper, so Tune ends the run loop itself."""

    INTERVAL_S = 3.0

    def __init__(self, key: str = ""):
        self.key = key
        self.lost: ServiceUnavailable | None = None
        self.failed = 0
        self._last_check = 0.0

    def __getstate__(self):  # Tuner pickles its callbacks; the live state stays in the driver
        return {"key": self.key, "lost": None, "failed": 0, "_last_check": 0.0}

    def __setstate__(self, state):
        # A copy unpickled by Tuner.restore in the process that registered this search shares the live state.
        live = tracking.LIVE.get(state["key"], {}).get("watch")
        self.__dict__ = live.__dict__ if live is not None else state

    def _check(self) -> None:
        self._last_check = time.monotonic()
        if self.lost is None:
            self.lost = health.lost_backend()

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
    # ray.init(configure_logging=False) empties the "ray" logger's handlers before it logs its first words
    # (e.g. that it set no SIGTERM handler off the main thread); with none left, Python's last-resort handler
    # would print them. Its own module's logger keeps a handler through that.
    init_logger = logging.getLogger("ray._private.worker")
    for old in list(init_logger.handlers):
        init_logger.removeHandler(old)
    init_logger.addHandler(handler)
    init_logger.propagate = False
    # The driver's MLflow logger threads report per-trial failures there too; the CLI prints one line.
    tracking_logger = logging.getLogger("ml_platform.tracking")
    for old in list(tracking_logger.handlers):
        tracking_logger.removeHandler(old)
    tracking_logger.addHandler(handler)
    tracking_logger.propagate = False


def init_ray() -> None:
    """Local: an in-process Ray runtime; cluster: whatever PLATFORM_RAY_ADDRESS points at (RayJob sets it)."""
    # The legacy reporter honours verbose=0; the new one prints a config box and a results table anyway.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune snapshots the experiment state (what `--resume` restores) every 10 s by default: a trial that finished
    # in the last 10 s before a kill would run again. The state of a small search is cheap to write every second.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    if settings.RAY_ADDRESS.get() == "local":  # the runtime's processes import ray (and jsonschema) first
        lean_imports.for_children()
    _log_ray_to_file()  # already for ray.init's own messages (off the main thread it warns about SIGTERM)
    for attempt in (1, 2, 3):
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
            # busy 2-core machine that can run out. A new start finds the imports warm.
            ray.shutdown()
            if attempt == 3 or "timed out during startup" not in str(exc):
                raise PlatformError(f"the local Ray runtime did not start: {exc}", "retry; see /tmp/ray") from exc
    _log_ray_to_file()


def stop_ray() -> None:
    """Shut the local Ray runtime down, if one runs: what the interpreter's exit does otherwise (after a 0.5 s
    pause, ~3 s in all, measured), for a caller done searching."""
    if ray.is_initialized():
        ray.shutdown()


def _end_parent(status: str) -> None:
    # If MLflow is gone this fails after the bounded retries; `up`/`tune` close the run once it is back.
    with contextlib.suppress(Exception):
        mlflow.end_run(status=status)


def _state_file() -> Path:
    return settings.state_dir() / "ray_results" / "last-search.json"


def _write_state(**state: Any) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _read_resumable() -> dict:
    try:
        state = json.loads(_state_file().read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    if not state or state.get("status") == "finished":
        raise PlatformError("there is no interrupted search to resume", "run `task tune` to start one")
    if not tune.Tuner.can_restore(state["experiment_path"]):
        raise PlatformError(f"the interrupted search's Ray state is gone ({state['experiment_path']})",
                            "run `task tune` to start a new search")  # fmt: skip
    return state


def _searcher(config: SearchConfig):
    if config.algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per study otherwise
        return OptunaSearch(metric=config.metric, mode=config.mode, seed=config.seed)
    return tune.search.BasicVariantGenerator(random_state=config.seed)


def _scheduler(config: SearchConfig):
    if config.scheduler == "fifo":
        return tune.schedulers.FIFOScheduler()
    # +1: a finished trial's last report (its model) comes one iteration after its last round; ASHA must not
    # cut a trial at max_t before that report. A grace period past max_t (`--max-rounds 3` with grace 5) would
    # trip ASHA's assertion: no trial reaches a rung there, so the first rung is the end.
    max_t = config.max_rounds + 1
    return tune.schedulers.ASHAScheduler(
        time_attr="training_iteration", max_t=max_t,
        grace_period=min(config.grace_period, max_t), reduction_factor=config.reduction_factor,
    )  # fmt: skip


def _pick_best(results, config: SearchConfig):
    """Best finished trial on the validation metric; ties are broken by the config itself (trial ids are random,
    the configs a seeded search proposes are not)."""
    finished = [r for r in results if not r.error and r.metrics and FINAL in r.metrics]
    if not finished:
        return None, finished
    sign = 1 if config.mode == "min" else -1
    return min(
        finished, key=lambda r: (sign * r.metrics[config.metric], json.dumps(r.config, sort_keys=True))
    ), finished


def _rounds_of(result) -> list[dict[str, float]]:
    frame = result.metrics_dataframe
    if frame is None or frame.empty:
        return []
    if FINAL in frame:
        frame = frame[frame[FINAL].isna()]
    cols = [c for c in ("valid_mlogloss", "valid_accuracy", "timestamp") if c in frame]
    return frame[cols].to_dict("records")


def run_tune(
    lake: str | None = None,
    config: SearchConfig | str | Path | None = None,
    samples: int | None = None,
    max_rounds: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    log_to_mlflow: bool = True,
) -> TuneResult:
    """The search. `config`: a SearchConfig or a YAML path (default ml_platform/search.yaml); flags override it."""
    start = time.monotonic()
    state = _read_resumable() if resume else None
    if state:
        config = SearchConfig(**state["config"], source="resumed search")
    elif not isinstance(config, SearchConfig):
        config = search_config.load(config)
    config = config if state else config.with_overrides(samples, max_rounds, seed)
    splits = load_splits(lake, version=state["dataset_version"] if state else None)
    if state and splits.content_hash != state["dataset_hash"]:
        raise ConfigError("the dataset version the search started on has changed", "run `task tune` to start anew")
    experiment_id = parent_run_id = ""
    if log_to_mlflow:
        mlflow.set_tracking_uri(settings.tracking_uri())
        experiment_id = mlflow.set_experiment(settings.EXPERIMENT.get()).experiment_id
        runs.close_orphaned_runs()
    init_ray()
    status, parent = "FAILED", None
    try:
        if log_to_mlflow:
            if state:  # the same parent run: start_run sets it RUNNING again, owned by this process now
                parent = mlflow.start_run(run_id=state["parent_run_id"])
                mlflow.set_tags(runs.owner_tags())
            else:
                parent = mlflow.start_run(run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}",
                                          tags={"stage": "tune", **runs.owner_tags()})  # fmt: skip
            parent_run_id = parent.info.run_id
        key = parent_run_id or f"nolog-{os.getpid()}-{time.monotonic_ns()}"
        lineage = tracking.lineage_tags(splits.dataset, splits.version, splits.content_hash, config.hash,
                                        config.seed, parent_run_id)  # fmt: skip
        if parent and not state:
            mlflow.log_params({"num_samples": config.samples, "max_rounds": config.max_rounds, "seed": config.seed,
                               "algorithm": config.algorithm, "scheduler": config.scheduler})  # fmt: skip
            mlflow.set_tags(lineage)
            mlflow.log_dict(config.as_dict(), "search_config.json")
        result = _search(config, splits, key, lineage, experiment_id, parent_run_id, state, log_to_mlflow)
        result.seconds = round(time.monotonic() - start, 1)
        status = "FINISHED"
        return result
    finally:
        tracking.LIVE.pop(locals().get("key", ""), None)
        if parent is not None:
            _end_parent(status)


def _search(config: SearchConfig, splits: Splits, key: str, lineage: dict, experiment_id: str, parent_run_id: str,
            state: dict | None, log_to_mlflow: bool) -> TuneResult:  # fmt: skip
    from ml_platform.trial import booster_params

    # A resumed search re-runs its unfinished trials from round 1: the restored Optuna study already holds
    # those rounds and warns once per round; it keeps the first value, which a re-run trial repeats anyway.
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    data = {k: getattr(splits, k) for k in ("x_train", "y_train", "x_valid", "y_valid")}
    trainable = tune.with_resources(tune.with_parameters(
        train, data=data, num_class=len(splits.classes), max_rounds=config.max_rounds, seed=config.seed,
        early_stopping_rounds=config.early_stopping_rounds,
    ), {"cpu": 1})  # fmt: skip
    fixed = {k: v for k, v in booster_params({}, len(splits.classes), config.seed).items()}
    fixed |= {"max_rounds": config.max_rounds, "early_stopping_rounds": config.early_stopping_rounds}
    logger = (tracking.TrialLogger(experiment_id, parent_run_id, {k: v for k, v in lineage.items()},
                                   fixed, model_requirements()) if log_to_mlflow else None)  # fmt: skip
    if state and logger:  # trials logged before the interruption keep their runs (FAILED ones are re-logged)
        client = mlflow.MlflowClient()
        # MLflow's search grammar accepts IN only for run_id, so the status is filtered here
        children = client.search_runs([experiment_id], max_results=1000,
                                      filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")  # fmt: skip
        ended = [r for r in children if r.info.status in ("FINISHED", "KILLED")]
        logger.logged.update({r.data.tags[tracking.TRIAL_ID]: r.info.run_id for r in ended
                              if tracking.TRIAL_ID in r.data.tags})  # fmt: skip
    watch = _BackendWatch(key)
    live = tracking.LIVE.setdefault(key, {})
    live.update(logger=logger, watch=watch)
    name = state["experiment_name"] if state else f"tune-{key[:8]}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = settings.state_dir() / "ray_results"
    if log_to_mlflow:
        _write_state(status="running", experiment_path=str(storage / name), experiment_name=name,
                     parent_run_id=parent_run_id, config=config.as_dict(), dataset_version=splits.version,
                     dataset_hash=splits.content_hash)  # fmt: skip
    try:
        with progress_bar(f"Ray Tune: {config.samples} XGBoost trials ({config.algorithm}, {config.scheduler})",
                          total=config.samples) as advance:  # fmt: skip
            live["advance"] = advance
            if state:
                tuner = tune.Tuner.restore(state["experiment_path"], trainable, resume_unfinished=True,
                                           param_space=config.tune_space())  # fmt: skip
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space=config.tune_space(),
                    tune_config=tune.TuneConfig(
                        metric=config.metric, mode=config.mode, num_samples=config.samples,
                        search_alg=_searcher(config), scheduler=_scheduler(config),
                        max_concurrent_trials=max(1, int(ray.cluster_resources().get("CPU", 1))),
                        reuse_actors=True,  # a fresh worker per trial re-imports xgboost + ray (seconds)
                    ),
                    run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                                              callbacks=[tracking.LiveCallback(key), watch], stop=watch),
                )  # fmt: skip
            results = tuner.fit()
        if watch.lost is not None:
            if logger:
                logger.abandon()
            raise ServiceUnavailable(
                f"{watch.lost.message}: the search was stopped ({watch.failed} trial(s) failed)",
                f"{watch.lost.hint}, then run `task tune -- --resume` "
                f"(details: {settings.state_dir() / 'logs' / 'ray.log'})",
            )
        best, finished = _pick_best(results, config)
        errors = [r for r in results if r.error]
        if logger:
            # Trials Tune finished before a kill (on --resume) or whose callbacks this process never saw.
            for r in results:
                if r.metrics and "trial_id" in r.metrics:
                    trial_id = r.metrics["trial_id"]
                    logger.on_end(trial_id, r.config, r.metrics, r.checkpoint, bool(r.error), _rounds_of(r))
            logger.close()
        if best is None:
            first = errors[0].error if errors else "no trial ran to its end"
            raise PlatformError(f"no trial finished ({len(errors)} failed); first error: {first}",
                                f"see the trial logs under {results.experiment_path}")  # fmt: skip
        trial_id = best.metrics["trial_id"]
        if logger and trial_id not in logger.logged:
            if (lost := health.lost_backend()) is not None:  # name the lost backend, like any stage does
                raise ServiceUnavailable(f"{lost.message}: the search's runs could not be logged",
                                         f"{lost.hint}, then `task tune -- --resume`")  # fmt: skip
            raise ServiceUnavailable(f"the best trial's run could not be logged: {'; '.join(logger.failures[:1])}",
                                     "check MLflow/S3 (`task status`), then `task tune -- --resume`")  # fmt: skip
        best_metrics = {k: float(best.metrics[k]) for k in ("valid_mlogloss", "valid_accuracy", "rounds")}
        # Reported only (never used to choose): how the chosen model does on the held-out test split.
        import xgboost as xgb

        with best.checkpoint.as_directory() as local:
            booster = xgb.Booster(model_file=str(Path(local) / CHECKPOINT_FILE))
        best_metrics |= {f"test_{k}": v for k, v in evaluate(booster, splits.x_test, splits.y_test).items()}
        best_run_id = logger.logged[trial_id] if logger else ""
        if logger:
            mlflow.log_metrics({f"best_{k}": v for k, v in best_metrics.items()})
            mlflow.set_tags({"best_run_id": best_run_id, "best_trial_id": trial_id, "failed_trials": len(errors),
                             "stopped_trials": len(results) - len(finished) - len(errors)})  # fmt: skip
            _write_state(**{**json.loads(_state_file().read_text()), "status": "finished"})
        model_uri = ""
        if best_run_id:
            from ml_platform.registry import model_uri_of_run

            model_uri = model_uri_of_run(best_run_id)
        return TuneResult(
            parent_run_id=parent_run_id, best_run_id=best_run_id, best_model_uri=model_uri,
            best_params={k: best.config[k] for k in config.space}, best_metrics=best_metrics,
            trials=len(results), finished=len(finished), failed=len(errors),
            stopped=len(results) - len(finished) - len(errors),
            seconds=0.0, config_hash=config.hash, resumed=state is not None,
        )  # fmt: skip
    finally:
        if logger:
            logger.abandon()
