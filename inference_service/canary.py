"""Rollout commands for both modes: serve, canary start / set / promote / rollback / status.

Each command renders the InferenceService it wants (`inference_service.isvc`), turns it into the patch kubectl
would send, and hands both to the mode's backend: locally the revision controller makes processes and the
proxy match the spec; on a cluster the patch goes to the Kubernetes API and the command waits until the
predictor's `status.traffic` shows what was asked. Every command returns the kubectl line that does the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from inference_service import isvc
from platform_core import settings
from platform_core.errors import PlatformError


@dataclass
class Change:
    """A wanted spec and the patch that turns the current object into it (what kubectl would send)."""

    spec: dict[str, Any]
    patch_type: str  # merge | json
    patch: Any
    expected_latest_percent: int  # what status.traffic must show for the latest revision
    # Locally: a latest revision found dead is started again, except on a weight change during a rollout, where
    # its loss is for the analysis to see (and roll back), not to be hidden by a restart.
    revive: bool = True

    def kubectl(self) -> str:
        name, namespace = self.spec["metadata"]["name"], self.spec["metadata"]["namespace"]
        return f"kubectl patch isvc {name} -n {namespace} --type={self.patch_type} -p '{json.dumps(self.patch)}'"


class Backend(Protocol):
    def current(self) -> dict[str, Any] | None: ...
    def apply(self, change: Change) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...


class LocalBackend:
    def current(self) -> dict[str, Any] | None:
        return isvc.read_local()

    def apply(self, change: Change) -> dict[str, Any]:
        from inference_service import revisions

        status = revisions.reconcile(change.spec, revive=change.revive)
        isvc.write_local(change.spec)  # after the revisions and the proxy took it: a failed start changes nothing
        return status

    def status(self) -> dict[str, Any]:
        from inference_service import revisions

        return revisions.status()


def backend() -> Backend:
    if settings.profile() == "cluster":
        from inference_service.cluster import ClusterBackend

        return ClusterBackend()
    return LocalBackend()


def _uri(name: str, version: str) -> str:
    from ml_platform.export import serving_uri

    return serving_uri(name, version)


def _rollout(name: str, version: str, percent: int | None) -> Change:
    spec = isvc.render(name, version, _uri(name, version), percent)
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
    from ml_platform import gate, registry
    from platform_core import health

    health.connect()  # the registry's login: without it an alias lookup fails like a missing alias
    name = settings.MODEL_NAME.get()
    challenger = registry.version_by_alias(name, gate.CHALLENGER)
    if challenger is None or str(challenger.version) != str(version):
        return None  # only the gated challenger becomes champion; anything else stays a serving decision
    new, _previous = gate.promote(name)
    return new


def rollback() -> tuple[dict[str, Any], Change]:
    """All traffic back to the stable revision (canaryTrafficPercent: 0); the canary stops after its drain.
    The registry is untouched."""
    return set_weight(0)


def status() -> dict[str, Any]:
    return backend().status()
