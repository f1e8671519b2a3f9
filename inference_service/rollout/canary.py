"""Rollout commands for both modes: serve, canary start / set / promote / rollback / status, for one model each.

Each command renders the InferenceService it wants (`inference_service.rollout.isvc`), turns it into what kubectl
would send (the whole object when the model's InferenceService does not exist yet, else a patch), and hands both
to the mode's backend: locally the revision controller makes the model's processes and routing match the spec; on
a cluster the object is created or patched through the Kubernetes API and the command waits until the
predictor's `status.traffic` shows what was asked. Every command returns the kubectl line that does the same.
`model` defaults to PLATFORM_MODEL_NAME; models are served side by side, each its own InferenceService.
"""

from __future__ import annotations

from typing import Any, Protocol

from inference_service.rollout import isvc
from inference_service.rollout.change import Change
from platform_core import bundle, settings
from platform_core.errors import PlatformError


class Backend(Protocol):
    name: str

    def current(self) -> dict[str, Any] | None: ...
    def apply(self, change: Change) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...


class LocalBackend:
    def __init__(self, name: str):
        self.name = name

    def current(self) -> dict[str, Any] | None:
        from inference_service.rollout import revisions

        revisions.models()  # moves a one-model state dir of earlier versions into place
        return isvc.read_local(self.name)

    def apply(self, change: Change) -> dict[str, Any]:
        from inference_service.rollout import revisions

        status = revisions.reconcile(change.spec, revive=change.revive)
        isvc.write_local(change.spec)  # after the revisions and the proxy took it: a failed start changes nothing
        return status

    def status(self) -> dict[str, Any]:
        from inference_service.rollout import revisions

        return revisions.status(revisions.load(self.name))


def _name(model: str | None) -> str:
    return model or settings.MODEL_NAME.get()


def backend(model: str | None = None) -> Backend:
    if settings.profile() == "cluster":
        from inference_service.rollout.cluster import ClusterBackend

        return ClusterBackend(_name(model))
    return LocalBackend(_name(model))


def _exported(name: str, version: str) -> None:
    """A version goes out only with its bundle on S3: exported now if it is not there yet (export is
    idempotent), so serve and canary start take any registered version."""
    from ml_platform.export import ensure_exported

    ensure_exported(name, version)


def _rollout(name: str, version: str, percent: int | None) -> Change:
    spec = isvc.render(name, version, bundle.storage_uri(name, version), percent)
    predictor = {"model": {"storageUri": isvc.storage_uri(spec)}, "canaryTrafficPercent": percent}
    patch = {"metadata": {"annotations": spec["metadata"]["annotations"]}, "spec": {"predictor": predictor}}
    return Change(spec, "merge", patch, 100 if percent is None else percent)


def _current(b: Backend) -> dict[str, Any]:
    spec = b.current()
    if spec is None:
        raise PlatformError(f"{b.name} is not served yet", f"run `task serve -- --model {b.name}` first")
    return spec


def kubectl_get(model: str | None = None) -> str:
    name, namespace = _name(model), settings.K8S_NAMESPACE.get()
    return f"kubectl get isvc {name} -n {namespace} -o jsonpath='{{.status.components.predictor}}'"


def serve(version: str, model: str | None = None) -> tuple[dict[str, Any], Change]:
    """Serve `version` of the model at 100% (its first revision, or a direct replacement without a canary); other
    models keep serving."""
    b = backend(model)
    _exported(b.name, version)
    change = _rollout(b.name, version, None)
    if b.current() is None:  # a new InferenceService: created whole, as `kubectl apply` would
        local = isvc.spec_file(b.name) if isinstance(b, LocalBackend) else None
        change = Change(change.spec, "create", change.spec, 100, manifest=str(local) if local else None)
    return b.apply(change), change


def start(version: str, percent: int, model: str | None = None) -> tuple[dict[str, Any], Change]:
    """A new revision of `version` next to the model's served one, with `percent` of its traffic."""
    b = backend(model)
    current = _current(b)
    if isvc.canary_percent(current) not in (None, 0) and len(b.status().get("traffic", [])) == 2:
        raise PlatformError(
            f"a canary of {b.name} (v{isvc.model_version(current)}) is already in progress",
            "`canary set N`, `promote` or `rollback` it",
        )
    same_template = (isvc.model_version(current), isvc.faults(current)) == (str(version), settings.SERVE_FAULTS.get())
    if same_template and isvc.canary_percent(current) is None:  # no field: the spec's model has all the traffic
        raise PlatformError(f"v{version} is what is served already; there is nothing to roll out", "gate a new model")
    if not 1 <= percent <= 99:
        raise PlatformError(f"a canary takes 1..99% of the traffic, not {percent}", "pass --percent 10")
    _exported(b.name, version)
    change = _rollout(b.name, version, percent)
    return b.apply(change), change


def _canary_in_progress(b: Backend) -> dict[str, Any]:
    current = _current(b)
    status = b.status()
    if len(status.get("traffic", [])) != 2 or isvc.canary_percent(current) in (None, 0):
        raise PlatformError(f"no canary of {b.name} is in progress", "start one with `task canary:start`")
    return current


def set_weight(percent: int, model: str | None = None) -> tuple[dict[str, Any], Change]:
    if not 0 <= percent <= 100:
        raise PlatformError(f"canary weight must be 0..100, got {percent}", "pass a whole percentage")
    b = backend(model)
    current = _canary_in_progress(b)
    spec = {**current, "spec": {"predictor": {**current["spec"]["predictor"], "canaryTrafficPercent": percent}}}
    change = Change(spec, "merge", {"spec": {"predictor": {"canaryTrafficPercent": percent}}}, percent, revive=False)
    return b.apply(change), change


def promote(model: str | None = None) -> tuple[dict[str, Any], Change, str | None]:
    """The canary takes all traffic (the field is removed); the registry's champion moves to its version when it
    is the gated challenger. Returns (status, change, new champion version or None)."""
    b = backend(model)
    current = _canary_in_progress(b)
    predictor = {k: v for k, v in current["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
    spec = {**current, "spec": {**current["spec"], "predictor": predictor}}
    change = Change(spec, "json", [{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}], 100)
    status = b.apply(change)
    return status, change, _move_champion(b.name, isvc.model_version(spec))


def _move_champion(name: str, version: str) -> str | None:
    from ml_platform import registry
    from platform_core import health

    health.connect()  # the registry's login: without it an alias lookup fails like a missing alias
    return registry.promote_if_challenger(name, version)


def rollback(model: str | None = None) -> tuple[dict[str, Any], Change]:
    """All of the model's traffic back to its stable revision (canaryTrafficPercent: 0); the canary stops after
    its drain. The registry is untouched."""
    return set_weight(0, model)


def status(model: str | None = None) -> dict[str, Any]:
    return backend(model).status()


def running_revision_urls(model: str | None = None) -> dict[str, str]:
    """Revision name -> its own loopback URL, for each running revision of a locally served model: where its
    `/metrics` and API docs are (the public port serves only the v2 API)."""
    return {r["name"]: r["url"] for r in status(model).get("revisions", []) if r.get("state") == "running"}


def statuses() -> dict[str, dict[str, Any]]:
    """Every served model's predictor status, by model name (locally: every model with serving state; on a
    cluster: the platform's InferenceServices in the namespace)."""
    if settings.profile() == "cluster":
        from inference_service.rollout.cluster import ClusterBackend, served_names

        return {name: ClusterBackend(name).status() for name in served_names()}
    from inference_service.rollout import revisions

    return revisions.statuses()
