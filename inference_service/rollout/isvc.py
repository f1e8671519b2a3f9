"""The InferenceService: the one spec of what is served, rendered from settings with the kserve SDK's models.

Locally each model's is written to `<state>/serving/<model>/inferenceservice.yaml` and the revision controller
(`inference_service.rollout.revisions`) makes processes and the proxy match it; on a cluster the same object is applied
and patched through the Kubernetes API (`inference_service.rollout.cluster`). Nothing else builds this YAML.

Canary semantics are KServe's (serverless mode): `canaryTrafficPercent: N` sends N% to the latest revision and
the rest to the last one that had 100%; no field = the latest gets everything; 0 = roll back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from platform_core import bundle, settings
from platform_core.errors import ConfigError

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODEL_VERSION_ANNOTATION = "platform.kfserve-bundle/model-version"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"


def render(model_name: str, version: str, storage_uri: str, canary_percent: int | None = None) -> dict[str, Any]:
    """The InferenceService for `version` of `model_name`, as a plain dict (what `kubectl apply` takes)."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import ApiClient, V1EnvVar, V1ObjectMeta, V1ResourceRequirements

    if canary_percent is not None and not 0 <= canary_percent <= 100:
        raise ConfigError(f"canary percent must be 0..100, got {canary_percent}", "pass a whole percentage")
    cpu, memory = settings.SERVE_CPU.get(), settings.SERVE_MEMORY.get()
    faults = settings.SERVE_FAULTS.get()
    # Part of the revision's template, as KServe would have it: a rehearsal's faults make a revision of their own.
    env = [V1EnvVar(name=settings.SERVE_FAULTS.name, value=faults)] if faults else None
    isvc = V1beta1InferenceService(
        api_version=f"{GROUP}/{API_VERSION}",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=model_name,
            namespace=settings.K8S_NAMESPACE.get(),
            annotations={
                TAG_ROUTING: "true",  # latest-<name> / prev-<name> reach each revision during a canary
                MODEL_VERSION_ANNOTATION: str(version),
            },
            labels={"app.kubernetes.io/part-of": "kfserve-bundle"},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                service_account_name=settings.SERVE_SERVICE_ACCOUNT.get(),
                min_replicas=settings.SERVE_MIN_REPLICAS.get(),
                max_replicas=settings.SERVE_MAX_REPLICAS.get(),
                canary_traffic_percent=canary_percent,
                model=V1beta1ModelSpec(
                    name="kserve-container",  # KServe's own name for the predictor container
                    model_format=V1beta1ModelFormat(name="xgboost"),
                    # This platform's predictor (its metrics drive the canary analysis), not KServe's stock one.
                    runtime=settings.SERVE_RUNTIME.get(),
                    protocol_version="v2",
                    storage_uri=storage_uri,
                    env=env,
                    resources=V1ResourceRequirements(
                        requests={"cpu": cpu, "memory": memory},
                        limits={"cpu": _double(cpu), "memory": memory},
                    ),
                ),
            )
        ),
    )
    return ApiClient().sanitize_for_serialization(isvc)


def _double(cpu: str) -> str:
    return f"{int(cpu[:-1]) * 2}m" if cpu.endswith("m") else str(float(cpu) * 2).removesuffix(".0")


def model_version(isvc: dict[str, Any]) -> str:
    return isvc["metadata"]["annotations"][MODEL_VERSION_ANNOTATION]


def storage_uri(isvc: dict[str, Any]) -> str:
    return isvc["spec"]["predictor"]["model"]["storageUri"]


def faults(isvc: dict[str, Any]) -> str:
    env = isvc["spec"]["predictor"]["model"].get("env") or []
    return next((e.get("value", "") for e in env if e.get("name") == settings.SERVE_FAULTS.name), "")


def canary_percent(isvc: dict[str, Any]) -> int | None:
    return isvc["spec"]["predictor"].get("canaryTrafficPercent")


def to_yaml(isvc: dict[str, Any]) -> str:
    return yaml.safe_dump(isvc, sort_keys=False)


def spec_file(model_name: str | None = None) -> Path:
    """The local copy of a model's spec: what its local revisions and its routing are made to match."""
    return settings.state_dir() / "serving" / (model_name or settings.MODEL_NAME.get()) / "inferenceservice.yaml"


def read_local(model_name: str | None = None) -> dict[str, Any] | None:
    try:
        return yaml.safe_load(spec_file(model_name).read_text())
    except FileNotFoundError:
        return None


def write_local(isvc: dict[str, Any]) -> Path:
    """Replace the local spec of its model in one rename, so a reader never sees half a file."""
    path = spec_file(isvc["metadata"]["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(to_yaml(isvc))
    tmp.replace(path)
    return path


MANIFEST = settings.REPO_ROOT / "manifests" / "serving" / "inferenceservice.yaml"
HEADER = (
    "# Rendered by `task serving:render-k8s` (inference_service/rollout/isvc.py) from the cluster settings;\n"
    "# do not edit.\n"
    "# `platform canary start` patches storageUri, the model-version annotation and canaryTrafficPercent.\n"
)


def render_manifest(version: str = "1") -> str:
    """The committed cluster manifest: the first version of the model, served at 100%."""
    name = settings.MODEL_NAME.get()
    uri = bundle.storage_uri(name, version)
    return HEADER + to_yaml(render(name, version, uri))
