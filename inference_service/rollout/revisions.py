"""The local revision controller: makes processes and the proxy match each model's InferenceService spec.

What KServe and Knative do on a cluster, done for one machine with the same rules, for any number of
InferenceServices side by side: a spec whose model differs from the latest revision's creates a new revision
(`<name>-predictor-00001`, numbered per model; its own ModelServer process on its own loopback ports, so a
broken canary cannot take the stable one down); `canaryTrafficPercent: N` gives it N% and the rest to the last
revision that had 100%; no field gives it everything; revisions left without traffic are stopped after a
drain. The answer is the predictor status in KServe's own shape (`latestRolledoutRevision`, `traffic[]`...),
so `platform canary status` reads both modes the same way. One model's rollout never touches another's routing.

State (`<state>/serving/<model>/revisions.json`) is written only after the proxy took the new routing: a failed
start changes nothing that was serving. A revision whose supervisor died (`kill -9`) but whose server still
runs is `orphaned`: it is found by its PID file's process group and its ports, keeps answering while it has
traffic, is replaced by the next `serve` or `promote` (which start a supervised revision) and is stopped as
soon as it has no traffic (rollback, drain, the next rollout) or by `task down`.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inference_service.rollout import isvc, proxy
from inference_service.runtime import workers
from platform_core import settings
from platform_core.errors import PlatformError
from platform_core.processes import Daemon, free_port
from platform_core.stack import REVISION_PREFIX


@dataclass
class Rev:
    name: str
    version: str
    storage_uri: str
    http_port: int
    grpc_port: int
    faults: str = ""

    @property
    def daemon(self) -> Daemon:
        return Daemon(REVISION_PREFIX + self.name, ports=lambda: (self.http_port, self.grpc_port))

    @property
    def url(self) -> str:
        return f"http://{settings.HOST.get()}:{self.http_port}"

    def running(self) -> bool:
        """Its supervisor runs (so does the server: the supervisor stops with it)."""
        return self.daemon.pid() is not None

    def state(self) -> str:
        """running | orphaned (the server outlived its supervisor) | stopped, as `task status` says it."""
        if not self.daemon.pid_file.exists():
            return "stopped"  # stopping removes the PID file last: nothing of it is left
        return self.daemon.state()


@dataclass
class State:
    model: str = ""
    created: int = 0  # revisions created so far: numbers the next one
    revisions: list[Rev] = field(default_factory=list)
    traffic: dict[str, int] = field(default_factory=dict)  # revision -> percent
    rolled_out: str | None = None  # last revision that had 100%
    previous_rolled_out: str | None = None

    def get(self, name: str | None) -> Rev | None:
        return next((r for r in self.revisions if r.name == name), None)

    @property
    def latest(self) -> Rev | None:
        return self.revisions[-1] if self.revisions else None


def model_dir(model_name: str) -> Path:
    return settings.state_dir() / "serving" / model_name


def _state_file(model_name: str) -> Path:
    return model_dir(model_name) / "revisions.json"


def _migrate() -> None:
    """The one-model layout of earlier versions (`serving/revisions.json` + `serving/inferenceservice.yaml`)
    moves into its model's directory."""
    old = settings.state_dir() / "serving" / "revisions.json"
    if not old.exists():
        return
    name = json.loads(old.read_text()).get("model") or settings.MODEL_NAME.get()
    model_dir(name).mkdir(parents=True, exist_ok=True)
    for legacy, new in ((old, _state_file(name)), (old.with_name("inferenceservice.yaml"), isvc.spec_file(name))):
        if legacy.exists() and not new.exists():
            legacy.replace(new)
        legacy.unlink(missing_ok=True)


def models() -> list[str]:
    """Every model with local serving state, by name."""
    _migrate()
    return sorted(p.parent.name for p in (settings.state_dir() / "serving").glob("*/revisions.json"))


def load(model_name: str | None = None) -> State:
    _migrate()
    name = model_name or settings.MODEL_NAME.get()
    try:
        raw = json.loads(_state_file(name).read_text())
    except FileNotFoundError:
        return State(model=name)
    return State(**{**raw, "revisions": [Rev(**r) for r in raw["revisions"]]})


def _save(state: State) -> None:
    path = _state_file(state.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    tmp.replace(path)


@contextmanager
def locked(model_name: str) -> Iterator[None]:
    """One rollout command per model at a time (a second one waits for the first); models do not wait on each other."""
    path = model_dir(model_name) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def bundle_dir(model_name: str, revision: str) -> Path:
    """Where a revision's serving bundle was downloaded (its metadata names the model's dataset)."""
    return model_dir(model_name) / revision


DOWNLOAD_TIMEOUT_S = 300  # a bundle is one model file and its metadata


def download(storage_uri: str, model_name: str, revision: str) -> Path:
    """Fetch a serving bundle with KServe's storage initializer, in its own process as an InferenceService runs
    it for storageUri (see storage_initializer)."""
    from inference_service.rollout import storage_initializer

    target = bundle_dir(model_name, revision)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    settings.apply_client_env()
    try:
        done = subprocess.run([sys.executable, "-m", storage_initializer.__name__, storage_uri, str(target)],
                              capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise PlatformError(f"downloading {storage_uri} did not finish in {exc.timeout:g} s", "check S3") from exc
    why = done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else f"exit code {done.returncode}"
    if done.returncode == storage_initializer.NOTHING_THERE:
        raise PlatformError(f"no serving bundle at {storage_uri}: {why}", "run `task export`")
    if done.returncode != 0:
        raise PlatformError(f"KServe's storage initializer failed on {storage_uri}: {why}", "check S3 (`task status`)")
    return target


def _start(state: State, model_name: str, version: str, storage_uri: str, faults: str) -> Rev:
    number = state.created + 1
    host = settings.HOST.get()
    rev = Rev(f"{model_name}-predictor-{number:05d}", version, storage_uri, free_port(host), free_port(host), faults)
    model_dir_ = download(storage_uri, model_name, rev.name)
    argv = workers.server_argv([
        "--model-name", model_name, "--model-dir", str(model_dir_), "--version", version, "--host", host,
        "--http-port", str(rev.http_port), "--grpc-port", str(rev.grpc_port), "--revision", rev.name,
    ], settings.SERVE_WORKERS.get())  # fmt: skip
    daemon = rev.daemon
    # One OpenMP thread: revisions share two cores with each other and their clients.
    # K_REVISION: what Knative tells a revision's container its name is.
    env = {"OMP_NUM_THREADS": "1", "K_REVISION": rev.name, settings.SERVE_FAULTS.name: faults}
    daemon.start(argv, env=env)
    (daemon.pid_file.with_suffix(".url")).write_text(rev.url)
    try:
        daemon.wait_ready(
            lambda: httpx.get(f"{rev.url}/v2/models/{model_name}/ready", timeout=2).status_code == 200,
            timeout=120,
            what=f"revision {rev.name} ({model_name} v{version})",
        )
    except BaseException:
        stop_revision(rev, drain=0)
        raise
    state.created = number
    return rev


def stop_revision(rev: Rev, drain: float | None = None) -> None:
    """Stop a revision that no longer gets traffic, orphaned or not; in-flight requests get `drain` seconds."""
    if rev.state() != "stopped":
        time.sleep(settings.CANARY_DRAIN_S.get() if drain is None else drain)
    rev.daemon.stop()
    rev.daemon.pid_file.with_suffix(".url").unlink(missing_ok=True)


def reconcile(spec: dict[str, Any], revive: bool = True) -> dict[str, Any]:
    """Make the spec's model's revisions and its routing match `spec`; returns the predictor status (KServe's
    shape). A new revision is started when the spec's model differs from the latest revision's, or (`revive`)
    when the latest is not running under its supervisor (dead or orphaned)."""
    name, version, uri = spec["metadata"]["name"], isvc.model_version(spec), isvc.storage_uri(spec)
    percent = isvc.canary_percent(spec)
    with locked(name):
        state = load(name)
        latest = state.latest
        # As in KServe, a changed template (model, or the revision's environment: here its faults) is a new revision.
        wanted = (version, uri, isvc.faults(spec))
        changed = latest is None or (latest.version, latest.storage_uri, latest.faults) != wanted
        if changed or (revive and not latest.running()):
            latest = _start(state, name, version, uri, isvc.faults(spec))
            state.revisions.append(latest)
        stable = state.get(state.rolled_out)
        if stable is not None and stable.state() == "stopped":
            stable = None  # nothing to fall back to: the new revision takes everything
        if percent is None or stable is None or stable.name == latest.name:
            traffic = {latest.name: 100}
        else:
            traffic = {latest.name: percent, stable.name: 100 - percent}
        state.traffic = traffic
        _route(state)
        if traffic.get(latest.name) == 100 and state.rolled_out != latest.name:
            state.previous_rolled_out, state.rolled_out = state.rolled_out, latest.name
        _save(state)
        for rev in state.revisions:
            if traffic.get(rev.name, 0) == 0 and rev.state() != "stopped":
                stop_revision(rev)  # drained first; an orphan of an earlier rollout too
        return status(state)


def _routing(state: State) -> tuple[proxy.Upstream, proxy.Upstream, int] | None:
    """(canary, stable, canary percent) of a model's traffic; outside a canary both slots are the one revision."""

    def upstream(name: str) -> proxy.Upstream:
        rev = state.get(name)
        return proxy.Upstream(rev.name, rev.http_port, rev.grpc_port)

    live = [n for n, p in state.traffic.items() if p > 0 and state.get(n) is not None]
    if not live:
        return None
    if len(live) == 2:
        # During a canary, as KServe's tag routing: latest- = the canary (the latest revision), prev- = the stable.
        canary, stable = sorted(live, key=lambda n: n != state.latest.name)
        return upstream(canary), upstream(stable), state.traffic[canary]
    return upstream(live[0]), upstream(live[0]), 0


def _route(state: State) -> None:
    """Publish this model's routing; a proxy that was not running starts with every other model that still
    has a revision answering, so starting it for one model never hides another."""
    with proxy.locked():
        if not proxy.running():
            proxy.reset()
            for other in models():
                if other == state.model:
                    continue
                others = load(other)
                routing = _routing(others)
                if routing and all(others.get(n).state() != "stopped" for n, p in others.traffic.items() if p):
                    proxy.publish(other, *routing)
        routing = _routing(state)
        if routing is not None:
            proxy.publish(state.model, *routing)
        proxy.ensure_running(preferred_default=settings.MODEL_NAME.get())


def status(state: State | None = None) -> dict[str, Any]:
    """The predictor status in KServe's shape, plus a `revisions` list with what runs where (local only)."""
    state = state or load()
    latest = state.latest
    states = {r.name: r.state() for r in state.revisions}
    ready = next((r for r in reversed(state.revisions) if states[r.name] == "running"), None)
    canary = len(state.traffic) == 2
    traffic = []
    for rev_name, percent in state.traffic.items():
        entry = {
            "revisionName": rev_name,
            "percent": percent,
            "latestRevision": latest is not None and rev_name == latest.name,
        }
        if canary:
            entry["tag"] = "latest" if entry["latestRevision"] else "prev"
            entry["url"] = f"http://{proxy.tag_host(entry['tag'], state.model)}:{settings.SERVE_HTTP_PORT.get()}"
        traffic.append(entry)
    return {
        "url": settings.serve_url(),
        "latestCreatedRevision": latest.name if latest else None,
        "latestReadyRevision": ready.name if ready else None,
        "latestRolledoutRevision": state.rolled_out,
        "previousRolledoutRevision": state.previous_rolled_out,
        "traffic": traffic,
        "revisions": [{**asdict(r), "url": r.url, "state": states[r.name]} for r in state.revisions],
    }


def statuses() -> dict[str, dict[str, Any]]:
    """Every locally served model's predictor status, by model name."""
    return {name: status(load(name)) for name in models()}


def stop_all() -> list[str]:
    """Stop the proxy and every model's revisions, orphans included (`task down`); specs and state stay for the
    record."""
    stopped = [proxy.PROXY.name] if proxy.stop() else []
    for name in models():
        state = load(name)
        for rev in state.revisions:
            if rev.state() != "stopped":
                stop_revision(rev, drain=0)
                stopped.append(rev.name)
        if state.traffic:
            state.traffic = {}
            _save(state)
    return stopped
