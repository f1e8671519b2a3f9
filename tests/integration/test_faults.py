"""Faults a user meets: a backend killed during a search, a service's parent killed with -9.

Each test breaks the session's stack on purpose and brings it back with `up` before it ends, so the tests
after it find the stack as they expect.
"""

import os
import signal
import subprocess
import sys
import time

import mlflow
import psutil
import pytest
from mlflow import MlflowClient

from platform_core import settings, stack
from platform_core.processes import port_owners

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def curated(local_stack, spark):
    """A published dataset to search on (the ETL through its CLI function, as `task etl` runs it)."""
    from data_platform import cli as data_cli

    data_cli.etl()


def service_main(daemon) -> psutil.Process:
    """The service's own process: the supervisor's (the PID file's) direct child."""
    children = psutil.Process(daemon.pid()).children()
    assert len(children) == 1, children
    return children[0]


def running_runs() -> list:
    mlflow.set_tracking_uri(settings.tracking_uri())
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")


def search_then_kill(daemon, wait_for_trials: bool) -> tuple[subprocess.CompletedProcess, float]:
    """Start `platform tune` as a user would, kill -9 `daemon`'s service once trials run, and return the
    command's result and how long it took to end after the kill."""
    import ray

    from ml_platform.tune import init_ray  # first: it sets Ray's auth environment before ray is imported

    # The CLI joins the session's Ray runtime as a second driver (as on a cluster): no second Ray start on 2 cores.
    init_ray()
    env = {**os.environ, "PLATFORM_RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    launched = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "platform_cli", "tune", "--samples", "6", "--max-rounds", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    results = settings.state_dir() / "ray_results"
    while time.monotonic() < deadline and proc.poll() is None:
        # Trials have started once the search run is open and Tune has written this search's first trial.
        searching = any(r.data.tags.get("stage") == "tune" for r in running_runs())
        trials = [p for p in results.glob("*/*/params.json") if p.stat().st_mtime > launched]
        if (searching and trials) or not wait_for_trials:
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[0]
    service_main(daemon).kill()
    killed = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the search did not end within 120 s of losing a backend")
    return subprocess.CompletedProcess(proc.args, proc.returncode, output), time.monotonic() - killed


@pytest.mark.parametrize(
    ("daemon", "message"),
    [(stack.SEAWEED, "S3 endpoint does not answer"), (stack.MLFLOW, "MLflow tracking server does not answer")],
    ids=["s3", "mlflow"],
)
def test_losing_a_backend_during_a_search_ends_it_fast_and_cleanly(curated, daemon, message):
    try:
        result, seconds = search_then_kill(daemon, wait_for_trials=True)
    finally:
        stack.up()  # also closes the runs the dead search left RUNNING
    assert result.returncode == 1, result.stdout
    assert seconds < 60, f"took {seconds:.0f}s after the kill"
    assert message in result.stdout and "task up" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout, result.stdout
    assert running_runs() == []


def test_a_killed_service_parent_leaves_no_orphan_serving_its_port(local_stack):
    """kill -9 of MLflow's own process: its supervisor stops the uvicorn worker it leaves behind."""
    port = settings.MLFLOW_PORT.get()
    main = service_main(stack.MLFLOW)
    assert main.children(recursive=True), "expected MLflow's worker process"
    try:
        main.kill()
        deadline = time.monotonic() + 30
        # The port frees when the worker dies; the supervisor exits just after it (it reaps the group first).
        while (port_owners((port,)) or stack.MLFLOW.state() != "stopped") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not port_owners((port,)), "an orphan still serves the MLflow port"
        assert stack.MLFLOW.state() == "stopped"
    finally:
        stack.up()
    assert stack.MLFLOW.state() == "running"


def test_status_up_and_down_handle_orphans_of_a_killed_supervisor(local_stack):
    """kill -9 of the PID in the PID file (the supervisor): the service runs on, orphaned. `status` reports
    it, `up` replaces it instead of failing on "port taken", and `down` stops it."""
    port = settings.MLFLOW_PORT.get()
    try:
        os.kill(stack.MLFLOW.pid(), signal.SIGKILL)
        time.sleep(0.5)
        assert stack.MLFLOW.state() == "orphaned"
        orphans = stack.MLFLOW.orphans()
        assert port_owners((port,)) <= orphans
        row = next(s for s in stack.status() if s.name == "mlflow")
        assert row.state == "orphaned" and row.pid in orphans
        stack.up()  # replaces the orphan
        assert stack.MLFLOW.state() == "running" and not (orphans & {p.pid for p in psutil.process_iter()})

        os.kill(stack.MLFLOW.pid(), signal.SIGKILL)
        time.sleep(0.5)
        assert stack.MLFLOW.state() == "orphaned"
        assert "mlflow" in stack.down()
        assert not port_owners((port,)) and stack.MLFLOW.state() == "stopped"
        assert stack.SEAWEED.state() == "stopped"
    finally:
        stack.up()
    assert stack.MLFLOW.state() == "running"
