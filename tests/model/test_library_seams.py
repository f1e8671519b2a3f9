"""The Ray and kfp internals the platform relies on (ml_platform/ray_env.py, orchestration/pipeline_local.py) are
still there: an upgrade that changes one fails here with its name, not as a silent change of behaviour."""

from __future__ import annotations

import inspect
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
