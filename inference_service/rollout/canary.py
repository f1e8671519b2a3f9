"""Rollout commands for both modes: serve, canary start / set / promote / rollback / status.

Each command renders the InferenceService it wants (`inference_service.rollout.isvc`), turns it into the patch kubectl
would send, and hands both to the mode's backend: locally the revision controller makes processes and the
proxy match the spec; on a cluster the patch goes to the Kubernetes API and the command waits until the
predictor's `status.traffic` shows what was asked. Every command returns the kubectl line that does the same.
"""

from __future__ import annotations

from typing import Any, Protocol

from inference_service.rollout import isvc
from inference_service.rollout.change import Change
from platform_core import bundle, settings
from platform_core.errors import PlatformError


class Backend(Protocol):
    def current(self) -> dict[str, Any] | None: ...
    def apply(self, change: Change) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...


class LocalBackend:
    def current(self) -> dict[str, Any] | None:
        return isvc.read_local()

    def apply(self, change: Change) -> dict[str, Any]:
        from inference_service.rollout import revisions

        status = revisions.reconcile(change.spec, revive=change.revive)
        isvc.write_local(change.spec)  # after the revisions and the proxy took it: a failed start changes nothing
        return status

    def status(self) -> dict[str, Any]:
        from inference_service.rollout import revisions

        return revisions.status()


def backend() -> Backend:
    if settings.profile() == "cluster":
        from inference_service.rollout.cluster import ClusterBackend

        return ClusterBackend()
    return LocalBackend()


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
        raise PlatformError(f"{settings.MODEL_NAME.get()} is not served yet", "run `task serve` first")
    return spec


def kubectl_get() -> str:
    name, namespace = settings.MODEL_NAME.get(), settings.K8S_NAMESPACE.get()
    return f"kubectl get isvc {name} -n {namespace} -o jsonpath='{{.status.components.predictor}}'"


def serve(version: str) -> tuple[dict[str, Any], Change]:
    """Serve `version` at 100% (the first revision, or a direct replacement without a canary)."""
    _exported(settings.MODEL_NAME.get(), version)
    change = _rollout(settings.MODEL_NAME.get(), version, None)
    return backend().apply(change), change


def start(version: str, percent: int) -> tuple[dict[str, Any], Change]:
    """A new revision of `version` next to the served one, with `percent` of the traffic."""
    b = backend()
    current = _current(b)
    if isvc.canary_percent(current) not in (None, 0) and len(b.status().get("traffic", [])) == 2:
        raise PlatformError(
            f"a canary (v{isvc.model_version(current)}) is already in progress",
            "`canary set N`, `promote` or `rollback` it",
        )
    same_template = (isvc.model_version(current), isvc.faults(current)) == (str(version), settings.SERVE_FAULTS.get())
    if same_template and isvc.canary_percent(current) is None:  # no field: the spec's model has all the traffic
        raise PlatformError(f"v{version} is what is served already; there is nothing to roll out", "gate a new model")
    if not 1 <= percent <= 99:
        raise PlatformError(f"a canary takes 1..99% of the traffic, not {percent}", "pass --percent 10")
    _exported(settings.MODEL_NAME.get(), version)
    change = _rollout(settings.MODEL_NAME.get(), version, percent)
    return b.apply(change), change


def _canary_in_progress(b: Backend) -> dict[str, Any]:
    current = _current(b)
    status = b.status()
    if len(status.get("traffic", [])) != 2 or isvc.canary_percent(current) in (None, 0):
        raise PlatformError("no canary is in progress", "start one with `task canary:start`")
    return current


def set_weight(percent: int) -> tuple[dict[str, Any], Change]:
    if not 0 <= percent <= 100:
        raise PlatformError(f"canary weight must be 0..100, got {percent}", "pass a whole percentage")
    b = backend()
    current = _canary_in_progress(b)
    spec = {**current, "spec": {"predictor": {**current["spec"]["predictor"], "canaryTrafficPercent": percent}}}
    change = Change(spec, "merge", {"spec": {"predictor": {"canaryTrafficPercent": percent}}}, percent, revive=False)
    return b.apply(change), change


def promote() -> tuple[dict[str, Any], Change, str | None]:
    """The canary takes all traffic (the field is removed); the registry's champion moves to its version when it
    is the gated challenger. Returns (status, change, new champion version or None)."""
    b = backend()
    current = _canary_in_progress(b)
    predictor = {k: v for k, v in current["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
    spec = {**current, "spec": {**current["spec"], "predictor": predictor}}
    change = Change(spec, "json", [{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}], 100)
    status = b.apply(change)
    return status, change, _move_champion(isvc.model_version(spec))


def _move_champion(version: str) -> str | None:
    from ml_platform import registry
    from platform_core import health

    health.connect()  # the registry's login: without it an alias lookup fails like a missing alias
    return registry.promote_if_challenger(settings.MODEL_NAME.get(), version)


def rollback() -> tuple[dict[str, Any], Change]:
    """All traffic back to the stable revision (canaryTrafficPercent: 0); the canary stops after its drain.
    The registry is untouched."""
    return set_weight(0)


def status() -> dict[str, Any]:
    return backend().status()
