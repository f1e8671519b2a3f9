"""The rollout commands on a cluster (`PLATFORM_PROFILE=cluster`): a model's InferenceService is created or patched
through the Kubernetes API (the `kubernetes` client, kubeconfig from the usual places or the pod's service
account), then the command waits until `status.components.predictor.traffic` shows what was asked.

KServe ignores `canaryTrafficPercent` in RawDeployment mode; the wait is what catches it, and the error says so.
"""

from __future__ import annotations

import os
import time
from typing import Any

from inference_service.rollout import isvc
from inference_service.rollout.change import Change
from platform_core import settings
from platform_core.errors import ConfigError, PlatformError

CONTENT_TYPES = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}
RAW_HINT = (
    "KServe ignores canaryTrafficPercent in RawDeployment mode (annotation serving.kserve.io/deploymentMode); "
    "canary rollouts need Serverless mode (Knative)"
)


PART_OF = "app.kubernetes.io/part-of=kfserve-bundle"  # the label isvc.render puts on every InferenceService


def _api():
    from kubernetes import client, config

    cfg = client.Configuration()  # our own: nothing cached process-wide between commands
    try:
        # KUBECONFIG read now: the client's own default was read once, at its import.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
    except (config.ConfigException, FileNotFoundError, TypeError):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as exc:
            raise ConfigError("no Kubernetes credentials (kubeconfig or in-cluster)", "set KUBECONFIG") from exc
    return client.CustomObjectsApi(client.ApiClient(cfg))


def served_names() -> list[str]:
    """The platform's InferenceServices in the namespace, by name."""
    from kubernetes.client.exceptions import ApiException

    namespace = settings.K8S_NAMESPACE.get()
    try:
        found = _api().list_namespaced_custom_object(
            isvc.GROUP, isvc.API_VERSION, namespace, isvc.PLURAL, label_selector=PART_OF
        )
    except ApiException as exc:
        raise PlatformError(f"Kubernetes API: {exc.status} {exc.reason}", "check the kubeconfig and RBAC") from exc
    return sorted(item["metadata"]["name"] for item in found.get("items", []))


class ClusterBackend:
    def __init__(self, name: str | None = None):
        self.api = _api()
        self.name, self.namespace = name or settings.MODEL_NAME.get(), settings.K8S_NAMESPACE.get()

    def _path(self) -> str:
        return f"/apis/{isvc.GROUP}/{isvc.API_VERSION}/namespaces/{self.namespace}/{isvc.PLURAL}/{self.name}"

    def _get(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                isvc.GROUP, isvc.API_VERSION, self.namespace, isvc.PLURAL, self.name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PlatformError(f"Kubernetes API: {exc.status} {exc.reason}", "check the kubeconfig and RBAC") from exc

    def current(self) -> dict[str, Any] | None:
        return self._get()

    def apply(self, change: Change) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        found = self._get()
        mode = ((found or change.spec)["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode")
        if mode == "RawDeployment" and change.expected_latest_percent not in (100,):
            raise PlatformError(f"{self.name} runs in RawDeployment mode", RAW_HINT)
        try:
            if found is None:
                self.api.create_namespaced_custom_object(
                    isvc.GROUP, isvc.API_VERSION, self.namespace, isvc.PLURAL, change.spec
                )
            else:
                # A create whose object appeared meanwhile: the whole spec, merged (what `kubectl apply` does).
                create = change.patch_type == "create"
                kind, body = ("merge", change.spec) if create else (change.patch_type, change.patch)
                self.api.api_client.call_api(
                    self._path(), "PATCH",
                    header_params={"Content-Type": CONTENT_TYPES[kind], "Accept": "application/json"},
                    body=body, auth_settings=["BearerToken"], response_type="object",
                    _return_http_data_only=True,
                )  # fmt: skip
        except ApiException as exc:
            raise PlatformError(
                f"Kubernetes API refused the change: {exc.status} {exc.reason}", change.kubectl()
            ) from exc
        return self._wait(change)

    def _wait(self, change: Change) -> dict[str, Any]:
        deadline = time.monotonic() + settings.CANARY_WAIT_S.get()
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            if _matches(status, change.expected_latest_percent):
                return status
            time.sleep(min(2.0, settings.CANARY_WAIT_S.get() / 10))
        seen = [(t.get("revisionName"), t.get("percent")) for t in status.get("traffic", [])] or "no traffic"
        raise PlatformError(
            f"{self.name}: the latest revision did not get {change.expected_latest_percent}% within "
            f"{settings.CANARY_WAIT_S.get():.0f}s (traffic: {seen})",
            f"{RAW_HINT}; check with `kubectl get isvc {self.name} -n {self.namespace}`",
        )

    def status(self) -> dict[str, Any]:
        found = self._get()
        if found is None:
            return {}
        predictor = dict(((found.get("status") or {}).get("components") or {}).get("predictor") or {})
        version = isvc.model_version(found)
        latest = predictor.get("latestReadyRevision")
        predictor["revisions"] = [
            {"name": t["revisionName"], "version": version if t["revisionName"] == latest else "",
             "state": "running", "url": t.get("url", "")}
            for t in predictor.get("traffic", []) if t.get("revisionName")
        ]  # fmt: skip
        return predictor


def _matches(status: dict[str, Any], percent: int) -> bool:
    """The latest revision is ready and has `percent` of the traffic (0 may also show as no entry)."""
    if not status.get("latestReadyRevision") or status.get("latestReadyRevision") != status.get(
        "latestCreatedRevision"
    ):
        return False
    traffic = status.get("traffic") or []
    latest = [t for t in traffic if t.get("latestRevision")]
    if percent == 0:
        return sum(t.get("percent", 0) for t in latest) == 0 and sum(t.get("percent", 0) for t in traffic) == 100
    return len(latest) == 1 and latest[0].get("percent") == percent
