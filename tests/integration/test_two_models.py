"""Two InferenceServices side by side through one proxy, as on a cluster: the demo's model (iris: 4 features, 3
named classes) and a second dataset's (6 features, 2 classes, other names), each with its own spec, revisions
numbered from 00001 and routing. Under keep-alive load on both (http.client, httpx, grpc; by path, by KServe's
host form, by gRPC authority and, for the default model, without), the second model is served, then one model's
canary is promoted and the other's rolled back at the same time: no request fails, the proxy never restarts."""

from __future__ import annotations

import threading

import httpx
import psutil
import pytest

from data_platform import cli as data_cli
from data_platform.generate import generate
from inference_service import cli as serving_cli
from inference_service.rollout import analysis, canary, proxy, revisions
from ml_platform import cli as ml_cli
from platform_core import settings, stack
from tests.integration.keepalive import KeepAliveLoad, Target

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SECOND = "duo"


@pytest.fixture(scope="module")
def second_model(demo, tmp_path_factory) -> str:
    """`duo-xgboost` @champion: a generated dataset through ETL -> tune (the session's 2 trials) -> gate -> export,
    on settings alone; the settings go back to the demo's dataset afterwards."""
    root = tmp_path_factory.mktemp(SECOND)
    rules = root / "gate.yaml"
    rules.write_text("primary: {metric: mlogloss, min_relative_improvement: 0.005}\n"
                     "secondary: [{metric: accuracy, max_drop: 0.01}]\n"
                     "floors: {accuracy: {min: 0.6}, mlogloss: {max: 0.69}}\n")  # fmt: skip
    name = f"{SECOND}-xgboost"
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"PLATFORM_DATASET": SECOND, "PLATFORM_CONTRACTS_DIR": str(root / "contracts"),
                           "PLATFORM_MODEL_NAME": name, "PLATFORM_EXPERIMENT": name,
                           "PLATFORM_GATE_CONFIG": str(rules)}.items():  # fmt: skip
            env.setenv(key, value)
        generate(settings.raw_path(), root / "contracts", SECOND, rows=600, features=6, classes=2, defect_rate=0.02,
                 seed=11, delimiter=";")  # fmt: skip
        data_cli.etl()
        ml_cli.tune()
        assert ml_cli.gate(promote=True).outcome == "passed"
        ml_cli.export()
    return name


def _policy() -> analysis.Policy:
    policy = analysis.Policy.from_settings()
    policy.steps, policy.interval_s, policy.threshold = [10, 25], 1.0, 2
    return policy


def _rss_mb(revision: revisions.Rev) -> int:
    """Resident memory of a revision's server processes (its supervisor is a small Python of its own)."""
    leader = psutil.Process(revision.daemon.pid())
    servers = [p for p in leader.children(recursive=True) if "inference_service.runtime" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in servers) >> 20


def test_two_models_side_by_side_one_canary_promoted_one_rolled_back_under_keepalive_load(
    demo, second_model, monkeypatch
):
    first, second = settings.MODEL_NAME.get(), second_model
    serving_cli.serve()  # the demo's model (test_demo_serving may have stopped serving since)
    proxy_pid = proxy.PROXY.pid()
    first_load = KeepAliveLoad([Target.of(first), Target.of(first, host=True, authority=False)], pause=0.02)
    with first_load:
        # A new model: a free slot of the running proxy, no reload; the first model keeps answering meanwhile.
        served = serving_cli.serve(model=second)
        assert [t["revisionName"] for t in served["traffic"]] == [f"{second}-predictor-00001"]
        with KeepAliveLoad([Target.of(second), Target.of(second, host=True)], pause=0.02) as second_load:
            monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "delay_ms=0")  # the champion again, as a revision of its own
            good = serving_cli.canary_start(alias="champion", percent=10)["latestCreatedRevision"]
            monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "delay_ms=300")  # slow: its latency check fails
            slow = serving_cli.canary_start(alias="champion", percent=10, model=second)["latestCreatedRevision"]
            monkeypatch.delenv("PLATFORM_SERVE_FAULTS")
            assert slow == f"{second}-predictor-00002"
            reports: dict[str, analysis.Report] = {}

            def analyse(model: str) -> None:
                reports[model] = analysis.run(_policy(), progress=lambda line: None, model=model)

            threads = [threading.Thread(target=analyse, args=(m,)) for m in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
    print(f"two models: failed/sent {first_load.summary()}, {second_load.summary()}")
    assert first_load.failed() == 0 and second_load.failed() == 0, first_load.failures() + second_load.failures()
    assert all(t.sent > 20 for load in (first_load, second_load) for t in load.tallies.values())
    assert proxy.PROXY.pid() == proxy_pid  # never restarted

    assert reports[first].verdict == "promoted" and reports[first].canary["revision"] == good
    assert reports[second].verdict == "rolled back" and reports[second].failed_checks == 2
    assert all("p95 latency (ms)" in {c["name"] for c in s["checks"] if not c["passed"]} for s in reports[second].steps)
    both = canary.statuses()
    assert [(t["revisionName"], t["percent"]) for t in both[first]["traffic"]] == [(good, 100)]
    stable = f"{second}-predictor-00001"
    assert [(t["revisionName"], t["percent"]) for t in both[second]["traffic"]] == [(slow, 0), (stable, 100)]
    assert {r["name"]: r["state"] for r in both[second]["revisions"]} == {stable: "running", slow: "stopped"}
    listed = {s.name.removeprefix("revision ") for s in stack.status() if s.state == "running"}
    assert {good, stable} <= listed  # `task status` lists every model's revisions

    index = httpx.get(f"{settings.serve_url()}/v2/models", timeout=10).json()["models"]
    assert {first, second} <= set(index) and proxy.default_model() == first
    for model in (first, second):
        assert httpx.get(f"{settings.serve_url()}/v2/models/{model}/ready", timeout=10).json()["ready"] is True
    memory = {m: _rss_mb(revisions.load(m).get(revisions.load(m).rolled_out)) for m in (first, second)}
    caddy = [p for p in psutil.Process(proxy.PROXY.pid()).children(recursive=True) if "caddy" in p.name()]
    print(f"RSS per served model (one revision each, MB): {memory}; proxy: "
          f"{sum(p.memory_info().rss for p in caddy) >> 20} MB")  # fmt: skip
    assert all(100 < mb < 1024 for mb in memory.values()), memory
