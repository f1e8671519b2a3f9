"""The search against the session's real stack and Ray runtime: seeded reproducibility, early-stopped trials
end KILLED (never RUNNING) with no model, lineage on every trial, and resume after kill -9 of the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow import MlflowClient

from ml_platform import tracking
from ml_platform.tune import run_tune
from platform_core import settings, storage
from tests.model.ml_support import isolated_names, publish_dataset, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def names(local_stack, spark):
    publish_dataset()
    with isolated_names("tune-tests"):
        yield


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """3 trials, few rounds, ASHA from round 2: small enough for 2 cores, aggressive enough to stop trials."""
    return write_config(tmp_path_factory.mktemp("cfg") / "small.yaml", **{
        "budget.samples": 3, "budget.max_rounds": 12, "budget.early_stopping_rounds": 5,
        "scheduler.grace_period": 2, "scheduler.reduction_factor": 2,
    })  # fmt: skip


@pytest.fixture(scope="module")
def two_searches(names, small):
    # Explicit budget: conftest's PLATFORM_TUNE_SAMPLES / _MAX_ROUNDS (for the demo) would override the file's.
    return run_tune(config=small, samples=3, max_rounds=12), run_tune(config=small, samples=3, max_rounds=12)


def _children(client, parent_run_id):
    experiment = client.get_experiment_by_name(settings.EXPERIMENT.get())
    return client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")


def test_same_seed_same_data_same_best(two_searches):
    first, second = two_searches
    assert first.best_params == second.best_params
    assert first.best_metrics["valid_mlogloss"] == second.best_metrics["valid_mlogloss"]
    assert first.best_run_id != second.best_run_id and first.config_hash == second.config_hash


def test_no_trial_run_stays_running_and_only_finished_trials_log_a_model(two_searches):
    client = MlflowClient()
    result = two_searches[0]
    trials = _children(client, result.parent_run_id)
    statuses = sorted(r.info.status for r in trials)
    assert len(trials) == 3 and "RUNNING" not in statuses
    assert statuses.count("FINISHED") == result.finished and statuses.count("KILLED") == result.stopped
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    experiment = client.get_experiment_by_name(settings.EXPERIMENT.get())
    for run in trials:
        models = mlflow.search_logged_models([experiment.experiment_id], output_format="list",
                                             filter_string=f"source_run_id = '{run.info.run_id}'")  # fmt: skip
        assert len(models) == (1 if run.info.status == "FINISHED" else 0), run.info.status
        history = client.get_metric_history(run.info.run_id, "round.valid_mlogloss")
        assert [m.step for m in history] == list(range(1, len(history) + 1)) and history  # per round, in order
        assert {"eta", "max_depth", "nthread", "max_rounds"} <= run.data.params.keys()
    finished = [r for r in trials if r.info.status == "FINISHED"]
    keys = storage.list_keys(f"s3://{settings.BUCKET.get()}/mlflow/{experiment.experiment_id}/models/")
    assert {k for k in keys if k.endswith("/model.ubj")} and len(finished) >= 1


def test_every_trial_run_carries_lineage(two_searches):
    from ml_platform.dataset import load_splits

    client = MlflowClient()
    result = two_searches[0]
    splits = load_splits()
    for run in _children(client, result.parent_run_id):
        tags = run.data.tags
        assert set(tracking.LINEAGE_KEYS) <= tags.keys()
        assert tags[tracking.DATASET_HASH] == splits.content_hash
        assert tags[tracking.DATASET_VERSION] == str(splits.version)
        assert tags[tracking.CONFIG_HASH] == result.config_hash
        assert tags[tracking.PARENT_RUN] == result.parent_run_id and tags[tracking.SEED] == "42"
        assert tags[tracking.GIT_COMMIT] == "unknown" or len(tags[tracking.GIT_COMMIT].split("+")[0]) == 40


def _snapshot_has_a_finished_trial(since: float) -> bool:
    """Tune's experiment snapshot (what `Tuner.restore` reads) already records a finished trial."""
    snapshots = [p for p in (settings.state_dir() / "ray_results").glob("*/experiment_state-*.json")
                 if p.stat().st_mtime >= since]  # fmt: skip
    return any("TERMINATED" in p.read_text() for p in snapshots)


def test_resume_after_kill_finishes_without_rerunning_finished_trials(names, tmp_path, monkeypatch):
    import ray

    from ml_platform.tune import init_ray

    monkeypatch.setenv("PLATFORM_EXPERIMENT", "resume-tests")  # only this search's runs (the CLI inherits it)
    # The CLI joins the session's Ray runtime as a second driver (as on a cluster): no second start on 2 cores;
    # its kill -9 ends its trials with it.
    init_ray()
    env = {**os.environ, "PLATFORM_RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    # Slow trials (many rounds, no early stopping, FIFO) so the kill lands mid-search.
    config = write_config(tmp_path / "slow.yaml", **{
        "budget.samples": 4, "budget.max_rounds": 150, "budget.early_stopping_rounds": 150,
        "scheduler.name": "fifo", "space": {"eta": {"type": "loguniform", "low": 0.001, "high": 0.002}},
    })  # fmt: skip
    client = MlflowClient()
    experiment_name = settings.EXPERIMENT.get()
    started = int(time.time() * 1000)
    proc = subprocess.Popen([sys.executable, "-m", "platform_cli", "tune", "--config", config, "--samples", "4",
                             "--max-rounds", "150"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    before, deadline = [], time.monotonic() + 420
    while time.monotonic() < deadline and proc.poll() is None and not before:
        experiment = client.get_experiment_by_name(experiment_name)
        runs = client.search_runs([experiment.experiment_id], "tags.stage = 'tune'") if experiment else []
        runs = [r for r in runs if r.info.start_time >= started]
        parent = max(runs, key=lambda r: r.info.start_time) if runs else None
        before = [r for r in _children(client, parent.info.run_id) if r.info.status == "FINISHED"] if parent else []
        before = before if before and _snapshot_has_a_finished_trial(started / 1000) else []
        time.sleep(0.2)
    assert proc.poll() is None and before, proc.communicate()[0] if proc.poll() is not None else "no trial finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)

    resumed = run_tune(resume=True)
    assert resumed.resumed and resumed.parent_run_id == parent.info.run_id
    trials = _children(client, parent.info.run_id)
    ended = [r for r in trials if r.info.status in ("FINISHED", "KILLED")]
    trial_ids = [r.data.tags[tracking.TRIAL_ID] for r in ended]
    assert len(trial_ids) == len(set(trial_ids)) == 4  # every trial once: none of the finished ones re-ran
    assert {r.info.run_id for r in before} <= {r.info.run_id for r in ended}
    assert "RUNNING" not in {r.info.status for r in trials}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    parents = client.search_runs([client.get_experiment_by_name(experiment_name).experiment_id], "tags.stage = 'tune'")
    assert parent.info.run_id in {p.info.run_id for p in parents}
    with pytest.raises(Exception, match="no interrupted search"):
        run_tune(resume=True)


def test_the_local_ray_runtimes_processes_skip_the_iri_grammar_too(two_searches):
    """Ray's worker processes run platform_core/child_site/sitecustomize.py at start-up (init_ray put it on their
    PYTHONPATH): jsonschema, which `import ray` loads, finds its optional IRI module blocked, as in our own
    processes (platform_core/lean_imports.py)."""
    import ray

    from ml_platform.tune import init_ray
    from platform_core.lean_imports import CHILD_SITE

    init_ray()

    @ray.remote
    def blocked() -> tuple:
        return "jsonschema" in sys.modules, "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None

    assert ray.get(blocked.remote(), timeout=60) == (True, True)
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(CHILD_SITE)
