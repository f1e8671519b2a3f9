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


def test_notebook_executes_against_the_stack(local_stack, spark, tmp_path):
    publish_dataset()
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
