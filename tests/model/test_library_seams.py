"""The Ray, kfp, jsonschema and xgboost internals the platform relies on (ml_platform/ray_env.py,
orchestration/pipeline_local.py, platform_core/lean_imports.py) are still there: an upgrade that changes one
fails here with its name, not as a silent change of behaviour."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version

import kfp.local.orchestrator.task_executor
import kfp.local.pipeline_orchestrator
import kfp.local.task_dispatcher


def test_ray_still_refreshes_its_cached_config_the_way_ray_env_does():
    from ray._raylet import Config  # ray_env: token auth set after `ray` was imported needs this refresh

    assert callable(getattr(Config, "initialize", None)), f"ray {version('ray')}: ray._raylet.Config.initialize gone"


def test_kfp_local_still_logs_the_lines_pipeline_local_reads():
    # pipeline_local turns kfp.local's log stream into one console line per task by these fragments.
    sources = {
        "Executing task {": kfp.local.task_dispatcher,
        "finished with status {": kfp.local.task_dispatcher,
        "cache hit (key=": kfp.local.orchestrator.task_executor,
        "Inner task failed: {": kfp.local.pipeline_orchestrator,
    }
    for fragment, module in sources.items():
        assert fragment in inspect.getsource(module), (
            f"kfp {version('kfp')}: {module.__name__} no longer logs {fragment!r}; "
            "update orchestration/pipeline_local.py"
        )


# Run as a model server's process runs (`python -m inference_service.runtime.server`, here its --help): what it
# imported, and whether the libraries that would load the blocked modules still import without them.
_SERVER_IMPORTS = """
import runpy, sys
sys.argv = ["server", "--help"]
try:
    runpy.run_module("inference_service.runtime.server", run_name="__main__")
except SystemExit:
    pass
import jsonschema, xgboost
print(sorted(m for m in ("rfc3987_syntax", "sklearn") if sys.modules.get(m) is not None), "kserve" in sys.modules,
      xgboost.compat.SKLEARN_INSTALLED)
"""


def test_a_model_server_imports_neither_the_iri_grammar_nor_scikit_learn_and_its_libraries_go_on_without():
    """jsonschema and xgboost import with the modules blocked (they still catch the ImportError), kserve loads,
    and xgboost sees no scikit-learn, as in the serving image (which does not install it)."""
    res = subprocess.run([sys.executable, "-c", _SERVER_IMPORTS], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (
        f"jsonschema {version('jsonschema')} / xgboost {version('xgboost-cpu')}: {res.stderr[-2000:]}"
    )
    assert res.stdout.strip().splitlines()[-1] == "[] True False", res.stdout


def test_every_process_of_ours_blocks_the_iri_grammar_before_jsonschema_loads():
    """Importing platform_core is enough (any platform module does); a module a library needs is never blocked."""
    code = "import platform_core, sys, jsonschema, sklearn; print(sys.modules['rfc3987_syntax'], bool(sklearn))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "None True", res.stderr[-2000:]


def test_a_child_that_imports_kfp_before_any_module_of_ours_gets_the_block():
    """As a local pipeline task's process does (`python -m kfp.dsl.executor_main`): started after
    `lean_imports.for_children()`, its sitecustomize blocks the module before kfp's import loads jsonschema."""
    child = "import kfp, sys; print(sys.modules.get('rfc3987_syntax', 'absent'))"
    code = (
        "import subprocess, sys\nfrom platform_core import lean_imports\nlean_imports.for_children()\n"
        f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd="/")
    assert res.returncode == 0 and res.stdout.strip() == "None", res.stdout + res.stderr[-2000:]
