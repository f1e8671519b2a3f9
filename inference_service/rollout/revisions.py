"""The local revision controller: makes processes and the proxy match the InferenceService spec.

What KServe and Knative do on a cluster, done for one machine with the same rules: a spec whose model differs
from the latest revision's creates a new revision (its own ModelServer process on its own loopback ports, so a
broken canary cannot take the stable one down); `canaryTrafficPercent: N` gives it N% and the rest to the last
revision that had 100%; no field gives it everything; revisions left without traffic are stopped after a
drain. The answer is the predictor status in KServe's own shape (`latestRolledoutRevision`, `traffic[]`...),
so `platform canary status` reads both modes the same way.

State (`<state>/serving/revisions.json`) is written only after the proxy took the new routing: a failed
start changes nothing that was serving.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
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
        return self.daemon.pid() is not None


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


def _state_file() -> Path:
    return settings.state_dir() / "serving" / "revisions.json"


def load() -> State:
    try:
        raw = json.loads(_state_file().read_text())
    except FileNotFoundError:
        return State()
    return State(**{**raw, "revisions": [Rev(**r) for r in raw["revisions"]]})


def _save(state: State) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=1))
    tmp.replace(path)


@contextmanager
def locked():
    """One rollout command at a time (a second one waits for the first)."""
    path = settings.state_dir() / "serving" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def download(storage_uri: str, model_name: str, revision: str) -> Path:
    """Fetch a serving bundle with KServe's storage initializer (what an InferenceService runs for storageUri)."""
    from kserve_storage import Storage  # heavy import (cloud SDKs); only this step needs it

    target = settings.state_dir() / "serving" / model_name / revision
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    settings.apply_client_env()
    try:
        Storage.download(storage_uri, str(target))
    except RuntimeError as exc:  # kserve_storage's way of saying "nothing there"
        raise PlatformError(f"no serving bundle at {storage_uri}: {exc}", "run `task export`") from exc
    return target


def _start(state: State, model_name: str, version: str, storage_uri: str, faults: str) -> Rev:
    number = state.created + 1
    host = settings.HOST.get()
    rev = Rev(f"{model_name}-predictor-{number:05d}", version, storage_uri, free_port(host), free_port(host), faults)
    model_dir = download(storage_uri, model_name, rev.name)
    argv = workers.server_argv([
        "--model-name", model_name, "--model-dir", str(model_dir), "--version", version, "--host", host,
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
    """Stop a revision that no longer gets traffic; in-flight requests get `drain` seconds to finish."""
    if rev.running():
        time.sleep(settings.CANARY_DRAIN_S.get() if drain is None else drain)
    rev.daemon.stop()
    rev.daemon.pid_file.with_suffix(".url").unlink(missing_ok=True)


def reconcile(spec: dict[str, Any], revive: bool = True) -> dict[str, Any]:
    """Make revisions and proxy match `spec`; returns the predictor status (KServe's shape). A new revision is
    started when the spec's model differs from the latest revision's, or (`revive`) when the latest is down."""
    name, version, uri = spec["metadata"]["name"], isvc.model_version(spec), isvc.storage_uri(spec)
    percent = isvc.canary_percent(spec)
    with locked():
        state, retired = load(), []
        if state.model and state.model != name:
            # Another model on the same public ports: it replaces the served one once it is ready (no canary
            # across models: they answer different requests).
            if percent is not None:
                raise PlatformError(f"{state.model} is served here, not {name}", f"serve {name} first (`task serve`)")
            retired = [r for r in state.revisions if r.running()]
            state = State(created=state.created)
        state.model = name
        latest = state.latest
        # As in KServe, a changed template (model, or the revision's environment: here its faults) is a new revision.
        wanted = (version, uri, isvc.faults(spec))
        changed = latest is None or (latest.version, latest.storage_uri, latest.faults) != wanted
        if changed or (revive and not latest.running()):
            latest = _start(state, name, version, uri, isvc.faults(spec))
            state.revisions.append(latest)
        stable = state.get(state.rolled_out)
        if stable is not None and not stable.running():
            stable = None  # nothing to fall back to: the new revision takes everything
        if percent is None or stable is None or stable.name == latest.name:
            traffic = {latest.name: 100}
        else:
            traffic = {latest.name: percent, stable.name: 100 - percent}
        _route(state, traffic)
        if traffic.get(latest.name) == 100 and state.rolled_out != latest.name:
            state.previous_rolled_out, state.rolled_out = state.rolled_out, latest.name
        state.traffic = traffic
        _save(state)
        for rev in [*retired, *state.revisions]:
            if traffic.get(rev.name, 0) == 0 and rev.running():
                stop_revision(rev)
        return status(state)


def _route(state: State, traffic: dict[str, int]) -> None:
    def upstream(name: str) -> proxy.Upstream:
        rev = state.get(name)
        return proxy.Upstream(rev.name, rev.http_port, rev.grpc_port, traffic.get(name, 0))

    split = [upstream(n) for n in traffic]
    tags = {}
    if len(traffic) == 2 and 0 not in traffic.values():
        # During a canary, as KServe's tag routing: latest- = the canary, prev- = the stable.
        latest, stable = list(traffic)
        tags = {"latest": upstream(latest), "prev": upstream(stable)}
    proxy.apply(state.model, split, tags)


def status(state: State | None = None) -> dict[str, Any]:
    """The predictor status in KServe's shape, plus a `revisions` list with what runs where (local only)."""
    state = state or load()
    latest = state.latest
    ready = next((r for r in reversed(state.revisions) if r.running()), None)
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
        "revisions": [
            {**asdict(r), "url": r.url, "state": "running" if r.running() else "stopped"} for r in state.revisions
        ],
    }


def stop_all() -> list[str]:
    """Stop the proxy and every revision (`task down`); the spec and state stay for the record."""
    stopped = [proxy.PROXY.name] if proxy.stop() else []
    state = load()
    for rev in state.revisions:
        if rev.running():
            stop_revision(rev, drain=0)
            stopped.append(rev.name)
    if state.traffic:
        state.traffic = {}
        _save(state)
    return stopped
