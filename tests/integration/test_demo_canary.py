"""Canary rollouts on the demo's stack, with real revisions (one ModelServer process each) behind the real proxy
(Caddy): traffic split (exact, by route key), tag routes, zero failed requests of keep-alive clients (http.client,
httpx, grpc) while weights change, automatic rollback of bad canaries (failing, slow, killed), promotion of a good
one (the demo's own), and an orphaned canary (its supervisor killed) reported alike and stopped."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from inference_service.cli import canary_start
from inference_service.rollout import analysis, canary, revisions
from inference_service.rollout.loadgen import Load, sample_rows
from inference_service.rollout.proxy import ROUTE_KEY, tag_host
from inference_service.runtime.revision_http import HEADER
from platform_core import settings
from platform_core.processes import port_in_use
from tests.integration.keepalive import KeepAliveLoad, Target

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _answering(n: int, host: str | None = None, keyed: bool = False) -> Counter:
    """Which revision answered each of `n` sequential requests through the proxy. `keyed`: each request carries a
    route key, spread evenly over the key space, so p% of them go to the canary exactly (no random draw)."""
    name = settings.MODEL_NAME.get()
    body = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    seen: Counter = Counter()
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            headers = {"Host": host} if host else {}
            if keyed:
                headers[ROUTE_KEY] = f"{i * 2**32 // n:08x}"
            answer = client.post(f"{settings.serve_url()}/v2/models/{name}/infer", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            seen[answer.headers[HEADER.decode()]] += 1
    return seen


def _champion(demo) -> str:
    return str(demo.get_model_version_by_alias(settings.MODEL_NAME.get(), "champion").version)


def _steady_load():
    return Load(settings.serve_url(), settings.MODEL_NAME.get(), sample_rows(), threads=2, rate=60, max_seconds=600)


def test_the_demos_canary_was_promoted_by_the_analysis(demo):
    report = json.loads(analysis.latest_report().read_text())
    assert report["verdict"] == "promoted" and report["champion"] == _champion(demo)
    assert [s["weight"] for s in report["steps"]] == [10, 25, 50] and all(s["passed"] for s in report["steps"])
    assert all(s["canary"]["requests"] >= settings.CANARY_MIN_REQUESTS.get() for s in report["steps"])
    status = canary.status()
    assert [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [(report["canary"]["revision"], 100)]


def test_split_follows_the_weights_tags_reach_each_revision_and_no_request_fails_meanwhile(demo, monkeypatch):
    stable = canary.status()["latestRolledoutRevision"]
    # The champion again, in a new revision: as in KServe, a changed revision environment is a new revision.
    monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "delay_ms=0")
    with _steady_load() as load:
        status = canary_start(alias="champion", percent=10)
        new = status["latestCreatedRevision"]
        assert new != stable
        for weight in (10, 50, 90):
            canary.set_weight(weight)
            seen = _answering(200, keyed=True)
            assert seen == {new: 2 * weight, stable: 200 - 2 * weight}, (weight, seen)  # exact: no random draw
        name = settings.MODEL_NAME.get()
        assert set(_answering(10, host=tag_host("latest", name))) == {new}
        assert set(_answering(10, host=tag_host("prev", name))) == {stable}
        status, _change, _champion_version = canary.promote()
        assert set(_answering(30)) == {new}
    tally = load.tally
    assert tally.sent > 100 and tally.failed == 0, tally.failures
    assert status["latestRolledoutRevision"] == new and status["previousRolledoutRevision"] == stable
    assert [r["state"] for r in status["revisions"] if r["name"] == stable] == ["stopped"]  # drained, then stopped


def test_weight_changes_drop_no_request_of_keepalive_rest_and_grpc_clients(demo, monkeypatch):
    """3 runs of keep-alive load (http.client and httpx over REST, by path and by KServe's host form; grpc with the
    model's authority and without), each while the canary's weight changes every 0.2 s: 0 failed requests."""
    name = settings.MODEL_NAME.get()
    # The champion again, in a revision of its own (another template than the split test's promoted one).
    monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "error_rate=0")
    new = canary_start(alias="champion", percent=10)["latestCreatedRevision"]
    stable = canary.status()["latestRolledoutRevision"]
    targets = [Target.of(name), Target.of(name, host=True, authority=False)]
    weights = itertools.cycle((50, 90, 30, 70, 10))
    try:
        for run in range(1, 4):
            with KeepAliveLoad(targets) as load:
                changes, deadline = 0, time.monotonic() + 6
                while time.monotonic() < deadline:
                    canary.set_weight(next(weights))
                    changes += 1
                    time.sleep(0.2)
            print(f"reweight run {run}: {changes} weight changes; failed/sent {load.summary()}")
            assert load.failed() == 0, load.failures()
            for tally in load.tallies.values():
                assert tally.sent > 50 and {new, stable} <= set(tally.by_revision), tally
    finally:
        canary.rollback()


def test_an_orphaned_canary_is_reported_alike_and_stopped_by_rollback_and_replaced_by_promote(demo, monkeypatch):
    """`kill -9` of a canary's supervisor leaves its server running: `canary status` and `task status` both call it
    orphaned; the rollback stops it (port closed), and a promotion replaces an orphaned canary by a supervised one."""
    from platform_core import stack

    def orphan_of(status: dict) -> revisions.Rev:
        rev = revisions.load().get(status["latestCreatedRevision"])
        os.kill(rev.daemon.pid(), signal.SIGKILL)  # the supervisor alone: its server keeps running
        deadline = time.monotonic() + 10
        while rev.daemon.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        return rev

    def states(rev: revisions.Rev) -> tuple[str, str]:
        local = {r["name"]: r["state"] for r in canary.status()["revisions"]}[rev.name]
        listed = [s.state for s in stack.status() if s.name.endswith(rev.name)]  # a stopped one has no PID file
        return local, listed[0] if listed else "stopped"

    monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "delay_ms=0, error_rate=0")  # a template not served yet
    orphan = orphan_of(canary_start(alias="champion", percent=10))
    assert states(orphan) == ("orphaned", "orphaned") and port_in_use("127.0.0.1", orphan.http_port)
    canary.rollback()
    assert states(orphan) == ("stopped", "stopped") and not port_in_use("127.0.0.1", orphan.http_port)
    assert not orphan.daemon.orphans()

    stable = canary.status()["latestRolledoutRevision"]
    orphan = orphan_of(canary_start(alias="champion", percent=10))
    status, _change, _champion_version = canary.promote()
    fresh = status["latestRolledoutRevision"]
    assert fresh not in (orphan.name, stable) and [t["revisionName"] for t in status["traffic"]] == [fresh]
    assert states(orphan) == ("stopped", "stopped") and not port_in_use("127.0.0.1", orphan.http_port)
    assert set(_answering(20)) == {fresh}


def _quick_policy(**changes) -> analysis.Policy:
    policy = analysis.Policy.from_settings()
    policy.steps, policy.interval_s, policy.threshold = [10, 25], 0.5, 2
    for key, value in changes.items():
        setattr(policy, key, value)
    return policy


@pytest.mark.parametrize(
    ("faults", "failing"), [("error_rate=0.5", "success rate"), ("delay_ms=300", "p95 latency (ms)")]
)
def test_a_bad_canary_is_rolled_back_and_the_registry_stays(demo, monkeypatch, faults, failing):
    champion, stable = _champion(demo), canary.status()["latestRolledoutRevision"]
    monkeypatch.setenv("PLATFORM_SERVE_FAULTS", faults)  # read by the revision process at its start
    status = canary_start(alias="champion", percent=10)
    monkeypatch.delenv("PLATFORM_SERVE_FAULTS")
    bad = status["latestCreatedRevision"]
    report = analysis.run(_quick_policy(), progress=lambda line: None)
    assert report.verdict == "rolled back" and report.failed_checks == 2
    for step in report.steps:
        assert failing in {c["name"] for c in step["checks"] if not c["passed"]}, step
    status = canary.status()
    assert [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [(bad, 0), (stable, 100)]
    assert [r["state"] for r in status["revisions"] if r["name"] == bad] == ["stopped"]
    assert set(_answering(20)) == {stable}
    assert _champion(demo) == champion  # a rollback never touches the registry
    assert json.loads(Path(report.path).read_text())["verdict"] == "rolled back"


def test_killing_the_canary_mid_rollout_rolls_back_and_the_stable_keeps_answering(demo):
    stable = canary.status()["latestRolledoutRevision"]
    status = canary_start(alias="champion", percent=10)
    victim = revisions.load().get(status["latestCreatedRevision"])
    steps: list[str] = []
    failed_by_first_check: list[int] = []

    def progress(line: str) -> None:
        steps.append(line)
        if len(steps) == 1:
            os.killpg(victim.daemon.pid(), signal.SIGKILL)  # the revision and its supervisor, no goodbye
        elif len(steps) == 2:  # the first check after the kill has just failed
            failed_by_first_check.append(load.tally.failed)

    with _steady_load() as load:
        report = analysis.run(_quick_policy(steps=[10, 25, 50]), progress=progress)
    assert report.steps[0]["passed"] and report.verdict == "rolled back"
    assert {"canary answers"} == {c["name"] for s in report.steps[1:] for c in s["checks"]}
    # Requests in flight on the canary when it was killed may fail (at most one per load thread); after the first
    # check none does: refused connections are retried on the stable revision, which then takes everything.
    assert failed_by_first_check[0] <= 2, load.tally.failures
    assert load.tally.failed == failed_by_first_check[0], load.tally.failures
    assert canary.status()["latestRolledoutRevision"] == stable
    assert set(_answering(20)) == {stable}
