"""`canary auto`: metric-gated rollout after Flagger's analysis model.

For each step weight (`PLATFORM_CANARY_STEPS`, up to `PLATFORM_CANARY_MAX_WEIGHT`): set the weight, let
`PLATFORM_CANARY_INTERVAL_S` of traffic pass (topped up with bounded loopback load when the canary saw fewer than
`PLATFORM_CANARY_MIN_REQUESTS`), then compare canary with stable over that window:

- success rate: the canary's non-5xx share >= `PLATFORM_CANARY_MIN_SUCCESS` (and it must answer at all);
- latency: canary p95 <= stable p95 x `PLATFORM_CANARY_MAX_LATENCY_RATIO` + `PLATFORM_CANARY_LATENCY_SLACK_MS`;
- prediction shift: PSI of the predicted class, canary vs stable, <= `PLATFORM_CANARY_MAX_PSI`.

A step whose checks all pass moves on; a failed one is analysed again at the same weight, and at
`PLATFORM_CANARY_THRESHOLD` failed checks the canary is rolled back. Every step passed -> promoted. The report
(JSON, every check with its value and limit) is written under `<state>/serving/canary-reports/`. Each model's
canary is analysed on its own (`model`), so two models can roll out at the same time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inference_service.rollout import canary
from inference_service.rollout.loadgen import Load, sample_rows
from inference_service.rollout.revision_metrics import LocalSource, PrometheusSource, Stats, psi
from platform_core import settings
from platform_core.errors import PlatformError


@dataclass
class Policy:
    steps: list[int]
    interval_s: float
    threshold: int
    min_requests: int
    min_success: float
    max_latency_ratio: float
    latency_slack_ms: float
    max_psi: float
    load: bool = True

    @classmethod
    def from_settings(cls, load: bool = True) -> Policy:
        try:
            steps = [int(s) for s in settings.CANARY_STEPS.get().split(",") if s.strip()]
        except ValueError:
            got = settings.CANARY_STEPS.get()
            raise PlatformError(f"PLATFORM_CANARY_STEPS must be weights like 10,25,50, got {got!r}", "fix it") from None
        cap = settings.CANARY_MAX_WEIGHT.get()
        steps = [s for s in steps if 0 < s <= min(cap, 99)]
        if not steps or steps != sorted(steps):
            raise PlatformError(
                "PLATFORM_CANARY_STEPS needs rising weights in 1..PLATFORM_CANARY_MAX_WEIGHT", "e.g. 10,25,50"
            )
        return cls(steps, settings.CANARY_INTERVAL_S.get(), max(settings.CANARY_THRESHOLD.get(), 1),
                   settings.CANARY_MIN_REQUESTS.get(), settings.CANARY_MIN_SUCCESS.get(),
                   settings.CANARY_MAX_LATENCY_RATIO.get(), settings.CANARY_LATENCY_SLACK_MS.get(),
                   settings.CANARY_MAX_PSI.get(), load)  # fmt: skip


@dataclass
class Report:
    model: str
    canary: dict[str, str]
    stable: dict[str, str]
    policy: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    failed_checks: int = 0
    verdict: str = "running"
    champion: str | None = None  # the registry's new @champion after a promotion (when the canary was @challenger)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path: str = ""


def checks(policy: Policy, can: Stats | None, stable: Stats | None, problem: str | None) -> list[dict[str, Any]]:
    """The step's checks, each {name, value, limit, passed}."""
    if can is None:
        return [{"name": "canary answers", "value": problem, "limit": "metrics readable", "passed": False}]
    out = []
    rate = can.success_rate
    out.append({"name": "success rate", "value": rate, "limit": f">= {policy.min_success}",
                "passed": rate is not None and rate >= policy.min_success and can.requests > 0})  # fmt: skip
    c95, s95 = can.quantile(0.95), stable.quantile(0.95) if stable else None
    if c95 is not None and s95 is not None:
        limit = s95 * policy.max_latency_ratio + policy.latency_slack_ms / 1000
        out.append({"name": "p95 latency (ms)", "value": round(c95 * 1000, 2), "limit": f"<= {limit * 1000:.2f}",
                    "passed": c95 <= limit})  # fmt: skip
    else:
        out.append({"name": "p95 latency (ms)", "value": None, "limit": "both revisions answered", "passed": False})
    shift = psi(stable.predicted, can.predicted) if stable else None
    out.append({"name": "predicted-class PSI", "value": None if shift is None else round(shift, 4),
                "limit": f"<= {policy.max_psi}", "passed": shift is not None and shift <= policy.max_psi})  # fmt: skip
    return out


def _revisions(status: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    traffic = status.get("traffic", [])
    latest = next((t for t in traffic if t.get("latestRevision")), None)
    other = next((t for t in traffic if not t.get("latestRevision")), None)
    if latest is None or other is None:
        raise PlatformError("no canary is in progress", "start one with `task canary:start`")
    known = {r["name"]: r for r in status.get("revisions", [])}

    def describe(entry: dict[str, Any]) -> dict[str, str]:
        rev = known.get(entry["revisionName"], {})
        return {"revision": entry["revisionName"], "version": str(rev.get("version", "")), "url": rev.get("url", "")}

    return describe(latest), describe(other)


def _source(can: dict[str, str], stable: dict[str, str]):
    revisions = {r["revision"]: r["url"] for r in (can, stable)}
    if settings.profile() == "cluster":
        return PrometheusSource(settings.PROMETHEUS_URL.get(), revisions)
    return LocalSource(revisions)


def _measure(source, name: str) -> tuple[Stats | None, str | None]:
    try:
        return source.measure(name), None
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def run(policy: Policy | None = None, progress=print, model: str | None = None) -> Report:
    """Walk the steps of the model's canary (default PLATFORM_MODEL_NAME); promote or roll back. `progress` gets
    one line per step. Other models' canaries may run at the same time."""
    policy = policy or Policy.from_settings()
    name = model or settings.MODEL_NAME.get()
    status = canary.status(name)
    can, stable = _revisions(status)
    report = Report(name, can, stable, policy.__dict__.copy())
    source = _source(can, stable)
    rows = sample_rows(name) if policy.load and settings.profile() == "local" else None
    index = 0
    while index < len(policy.steps):
        weight = policy.steps[index]
        canary.set_weight(weight, name)
        source.start()
        time.sleep(policy.interval_s)
        c, problem = _measure(source, can["revision"])
        if rows is not None and c is not None and c.requests < policy.min_requests:
            # Too little traffic to judge: top it up through the public endpoint, as live traffic arrives.
            wanted = policy.min_requests - c.requests
            load = Load(settings.serve_url(), report.model, rows,
                        until=lambda t, wanted=wanted: t.by_revision[can["revision"]] >= wanted,
                        max_requests=max(policy.min_requests * 100 // weight * 3, 200), max_seconds=30)  # fmt: skip
            load.start().wait()
            c, problem = _measure(source, can["revision"])
        s, _ = _measure(source, stable["revision"])
        results = checks(policy, c, s, problem)
        passed = all(r["passed"] for r in results)
        report.steps.append({"weight": weight, "canary": c.summary() if c else None,
                             "stable": s.summary() if s else None, "checks": results, "passed": passed})  # fmt: skip
        progress(_line(weight, results, passed))
        if passed:
            index += 1
            continue
        report.failed_checks += 1
        if report.failed_checks >= policy.threshold:
            canary.rollback(name)
            report.verdict = "rolled back"
            return _write(report)
    _status, _change, report.champion = canary.promote(name)
    report.verdict = "promoted"
    return _write(report)


def _line(weight: int, results: list[dict[str, Any]], passed: bool) -> str:
    parts = ", ".join(f"{r['name']} {r['value']} ({'ok' if r['passed'] else 'FAIL, ' + r['limit']})" for r in results)
    return f"{'✔' if passed else '✘'} {weight:>3}%: {parts}"


def _write(report: Report) -> Report:
    folder = settings.state_dir() / "serving" / "canary-reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{report.canary['revision']}.json"
    report.path = str(path)
    path.write_text(json.dumps(report.__dict__, indent=2, default=str))
    return report


def latest_report(model: str | None = None) -> Path | None:
    """The newest report of the model's canaries (default PLATFORM_MODEL_NAME)."""
    folder = settings.state_dir() / "serving" / "canary-reports"
    name = model or settings.MODEL_NAME.get()
    found = folder.glob(f"????????T??????-{name}-predictor-?????.json") if folder.exists() else []
    return max(found, default=None, key=lambda p: p.stat().st_mtime)
