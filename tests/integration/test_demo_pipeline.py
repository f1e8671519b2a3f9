"""The Kubeflow pipeline run locally (kfp.local, one subprocess per task) on the demo's stack, after its canary
tests and before test_demo_serving stops the served model: a run whose challenger passes the gate reaches a
promoted canary; the same run again reuses the cached search, the gate finds nothing new and the canary is
skipped."""

from __future__ import annotations

import pytest
import ray

from inference_service.rollout import canary
from orchestration import pipeline
from platform_core import settings
from tests import readme

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _alias(demo, alias: str) -> str:
    return str(demo.get_model_version_by_alias(settings.MODEL_NAME.get(), alias).version)


def test_the_pipeline_reaches_a_promoted_canary_then_reuses_its_search_and_skips_the_canary(demo, monkeypatch):
    name = settings.MODEL_NAME.get()
    # The tune task joins the session's Ray runtime (the demo's) as a second driver, as a cluster's task joins
    # its RayJob's cluster, instead of starting one of its own: ~20 s of a 58 s task on 2 cores (measured).
    assert ray.is_initialized(), "the demo fixture runs the demo in this process, Ray included"
    monkeypatch.setenv("PLATFORM_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    # The demo's first model is champion again: the demo's second search (same seed and rounds) beats it.
    demo.set_registered_model_alias(name, "champion", _alias(demo, "previous"))
    before = canary.status()["latestRolledoutRevision"]
    # The first run is the README's command, as a user types it (its arguments are the demo's second search).
    command = readme.command("task pipeline:run")
    arguments = {"samples": settings.TUNE_SAMPLES.get(), "max_rounds": settings.TUNE_MAX_ROUNDS.get(),
                 "seed": settings.DEMO_SECOND_SEED.get()}  # fmt: skip
    assert command.split(" -- ")[1].split() == [
        "--samples", str(arguments["samples"]), "--max-rounds", str(arguments["max_rounds"]),
        "--seed", str(arguments["seed"]),
    ]  # fmt: skip

    out = readme.run(command, timeout=600).stdout
    assert "pipeline finished: etl done, tune done, gate done, rollout done" in out, out
    assert "rollout" in out and "done in" in out and "Traceback" not in out
    status = canary.status()
    rolled_out = status["latestRolledoutRevision"]
    assert rolled_out != before and [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [
        (rolled_out, 100)
    ]
    promoted = _alias(demo, "champion")
    assert {r["name"]: r["version"] for r in status["revisions"]}[rolled_out] == promoted

    again = pipeline.run_local(**arguments)
    assert again["tune"].status == "cached"  # same dataset content hash and search settings: kfp's cache
    assert {n: t.status for n, t in again.items() if n != "tune"} == {"etl": "done", "gate": "done",
                                                                      "record-rejection": "done"}  # fmt: skip
    assert "rollout" not in again and _alias(demo, "champion") == promoted
    assert canary.status()["latestRolledoutRevision"] == rolled_out
