"""ml_platform/notebooks/ray_tune.ipynb runs top to bottom against the session's stack (nbclient, a kernel in
this venv whose environment carries the stack's endpoints and MLflow login), and is committed without outputs."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from platform_core import settings
from tests.model.ml_support import isolated_names, publish_dataset

pytestmark = pytest.mark.integration
NOTEBOOK = settings.REPO_ROOT / "ml_platform" / "notebooks" / "ray_tune.ipynb"


def test_notebook_is_committed_without_outputs():
    raw = json.loads(NOTEBOOK.read_text())
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_executes_against_the_stack(local_stack, spark, tmp_path, monkeypatch):
    from ml_platform.tune import init_ray

    publish_dataset()
    # The kernel joins the session's Ray runtime (one per session; a second start costs 10-60 s on 2 cores).
    init_ray()
    import ray

    monkeypatch.setenv("PLATFORM_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment: endpoints + login (local_stack applied client_env()),
    # the session's state dir and ports, small budget (conftest), and names of its own.
    with isolated_names("notebook-tests"):
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the trial metrics plot"
    text = "".join(o.get("text", "") for o in outputs)
    assert "best run" in text and "gate would say:" in text


def test_notebook_server_is_a_token_protected_loopback_daemon_with_the_stack_env(local_stack):
    import httpx
    import psutil

    from ml_platform.notebook_server import start_notebook
    from platform_core import stack

    server = start_notebook()
    try:
        base = server.url.split("/lab?")[0]
        token = server.url.split("token=")[1]
        assert base.startswith("http://127.0.0.1:")
        assert httpx.get(f"{base}/api/status", timeout=10).status_code == 403
        assert httpx.get(f"{base}/api/status", params={"token": token}, timeout=10).status_code == 200
        specs = httpx.get(f"{base}/api/kernelspecs", params={"token": token}, timeout=10).json()
        assert specs["default"] == "python3"
        row = next(s for s in stack.status() if s.name.startswith("notebook"))
        assert row.state == "running" and row.pid == server.pid
        jupyter = psutil.Process(server.pid).children()[0]  # the supervisor's child: the server (kernels inherit)
        env = jupyter.environ()
        assert env["MLFLOW_TRACKING_URI"] == settings.tracking_uri() and env["MLFLOW_TRACKING_PASSWORD"]
        assert env["AWS_ENDPOINT_URL"] == settings.s3_endpoint() and env["PLATFORM_STATE_DIR"]
        assert start_notebook().already_running
    finally:
        assert stack.NOTEBOOK.stop()  # what `task down` does for it (down() lists NOTEBOOK first)
    assert stack.NOTEBOOK.state() == "stopped"
