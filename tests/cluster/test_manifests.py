"""Kustomize leaves (manifests/overlays/<overlay>-<cloud>): they build, every built-in kind validates (strict, pinned
Kubernetes version), every custom resource validates against its upstream CRD schema, and the security rules hold for
every workload."""

from __future__ import annotations

import copy
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import K8S_VERSION, LEAVES, NAMESPACE, ROOT
from .k8s_objects import pod_specs

BASE = ROOT / "manifests" / "base"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def is_builtin(api_version: str) -> bool:
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def crd_validator(schema: dict) -> jsonschema.Draft7Validator:
    """JSON-schema validator for a CRD's openAPIV3Schema, as strict as the API server's field validation:
    unknown fields are errors unless the schema preserves them; `nullable` admits null; CEL rules are skipped."""

    def strict(node):
        if isinstance(node, list):
            return [strict(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = {k: strict(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node

    schema = strict(copy.deepcopy(schema))
    # the API server fills apiVersion/kind/metadata itself; metadata is validated by kubernetes_validate's rules
    top = schema.setdefault("properties", {})
    top.update(apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"})
    return jsonschema.Draft7Validator(schema)


def crd_errors(obj: dict, schemas: dict) -> list[str]:
    key = (obj["apiVersion"], obj["kind"])
    assert key in schemas, f"no upstream CRD schema for {key}: add its CRD copy to ../shared/specs/crds/"
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator(schemas[key]).iter_errors(obj)]


@pytest.mark.parametrize("overlay", LEAVES)
def test_overlay_builds_with_the_platform_pieces(builds, overlay):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in builds[overlay]}
    for expected in [("Namespace", NAMESPACE), ("Deployment", "mlflow"), ("Service", "mlflow"), ("RayJob", "tune"),
                     ("ConfigMap", "kfp-endpoints"), ("ConfigMap", "platform-settings"),
                     ("S3Connection", "platform-lake"), ("SparkApplication", "platform-etl-iris"),
                     ("CronJob", "platform-deploy"), ("NetworkPolicy", "default-deny-all")]:  # fmt: skip
        assert expected in kinds, f"{overlay} lacks {expected}"


@pytest.mark.parametrize("overlay", LEAVES)
def test_builtin_kinds_validate_strictly(builds, overlay):
    checked = 0
    for obj in builds[overlay]:
        if not is_builtin(obj["apiVersion"]):
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")
        checked += 1
    assert checked >= 10


def test_strict_validation_rejects_unknown_fields(builds):
    deployment = copy.deepcopy(next(o for o in builds["dev-ionos"] if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", LEAVES)
def test_custom_resources_validate_against_upstream_crds(builds, crd_schemas, overlay):
    custom = [o for o in builds[overlay] if not is_builtin(o["apiVersion"])]
    assert any(o["kind"] == "RayJob" for o in custom)
    for obj in custom:
        errors = crd_errors(obj, crd_schemas)
        assert not errors, f"{overlay}: {obj['kind']}/{obj['metadata']['name']}:\n" + "\n".join(errors)


def test_crd_validation_catches_typos_and_wrong_types(builds, crd_schemas):
    rayjob = next(o for o in builds["dev-ionos"] if o["kind"] == "RayJob")
    typo = copy.deepcopy(rayjob)
    typo["spec"]["entrypointt"] = typo["spec"].pop("entrypoint")
    assert any("entrypointt" in e for e in crd_errors(typo, crd_schemas))
    wrong = copy.deepcopy(rayjob)
    wrong["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert crd_errors(wrong, crd_schemas)


def test_rayjob_runs_the_tune_stage(builds):
    rayjob = next(o for o in builds["dev-ionos"] if o["kind"] == "RayJob")
    assert rayjob["spec"]["entrypoint"] == "platform tune"
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True


@pytest.mark.parametrize("overlay", LEAVES)
def test_rayjob_worker_counts_mean_what_they_say(builds, overlay):
    """Without Ray's autoscaler KubeRay runs `replicas` workers: min/max that differ from it would promise scaling
    that never happens (the production overlay once set maxReplicas 8 over 2 replicas)."""
    rayjob = next(o for o in builds[overlay] if o["kind"] == "RayJob")
    autoscaling = rayjob["spec"]["rayClusterSpec"].get("enableInTreeAutoscaling") is True
    for group in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        sizes = (group.get("minReplicas"), group["replicas"], group.get("maxReplicas"))
        if autoscaling:
            assert sizes[0] <= sizes[1] <= sizes[2], f"{overlay}: {group['groupName']} {sizes}"
        else:
            assert len(set(sizes)) == 1, f"{overlay}: {group['groupName']} min/replicas/max {sizes} without autoscaler"
    sizes = {leaf: next(o for o in builds[leaf] if o["kind"] == "RayJob")["spec"]["rayClusterSpec"]
             ["workerGroupSpecs"][0]["replicas"] for leaf in LEAVES}  # fmt: skip
    assert sizes["production-ionos"] > sizes["dev-ionos"], "production searches with more workers than dev"


@pytest.mark.parametrize("overlay", LEAVES)
def test_run_once_objects_are_created_not_applied(builds, overlay):
    """The RayJob is created suspended; re-applying it would re-suspend a running search. The ETL likewise runs once.
    manifests/deploy.sh creates objects with this label only when absent (test_tasks checks that side)."""
    for kind in ("RayJob", "SparkApplication"):
        obj = next(o for o in builds[overlay] if o["kind"] == kind)
        assert obj["metadata"]["labels"].get("platform/create-only") == "true", f"{overlay}: {kind}"
    assert next(o for o in builds[overlay] if o["kind"] == "RayJob")["spec"]["suspend"] is True


@pytest.mark.parametrize("overlay", LEAVES)
def test_everything_namespaced_lands_in_the_platform_namespace(builds, overlay):
    for obj in builds[overlay]:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", LEAVES)
def test_every_pod_is_non_root_read_only_and_drops_all_capabilities(builds, overlay):
    seen = 0
    for obj in builds[overlay]:
        for where, pod in pod_specs(obj):
            seen += 1
            psc = pod.get("securityContext", {})
            assert psc.get("runAsNonRoot") is True, f"{overlay} {where}: pod runAsNonRoot"
            assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{overlay} {where}: seccomp"
            for c in pod.get("initContainers", []) + pod["containers"]:
                sc = c.get("securityContext", {})
                assert sc.get("allowPrivilegeEscalation") is False, f"{overlay} {where}/{c['name']}"
                assert sc.get("readOnlyRootFilesystem") is True, f"{overlay} {where}/{c['name']}: read-only root"
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{overlay} {where}/{c['name']}: caps"
                assert c.get("resources", {}).get("limits"), f"{overlay} {where}/{c['name']}: resource limits"
    assert seen >= 5


@pytest.mark.parametrize("overlay", LEAVES)
def test_mlflow_uses_postgres_and_s3_from_secret_references(builds, overlay):
    deploy = next(o for o in builds[overlay] if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db"
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    assert any(a.startswith("--artifacts-destination=s3://") for a in container["args"])
    if overlay.endswith("-ionos"):
        for key, secret_key in (("AWS_ACCESS_KEY_ID", "accessKey"), ("AWS_SECRET_ACCESS_KEY", "secretKey")):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "s3-credentials", "key": secret_key}
    else:
        assert "AWS_ACCESS_KEY_ID" not in env, "on AWS the pods get S3 through IRSA, never static keys"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    # no credential is ever a literal value in a workload
    for e in container["env"]:
        assert "value" not in e or not re.search(r"(?i)password|secret|key", e["name"]) or e["name"] == "HOME"


EXAMPLE_SECRETS = {"dev-ionos": {"s3-credentials", "mlflow-db", "mlflow-auth"}, "dev-aws": {"mlflow-db", "mlflow-auth"},
                   "production-ionos": set(), "production-aws": set()}  # fmt: skip


@pytest.mark.parametrize("overlay", LEAVES)
def test_only_dev_carries_example_secrets_with_fake_values(builds, overlay):
    secrets = [o for o in builds[overlay] if o["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} == EXAMPLE_SECRETS[overlay]
    for secret in secrets:
        assert secret["metadata"]["labels"].get("platform/example-secret") == "true"
        values = " ".join(str(v) for v in secret.get("stringData", {}).values())
        assert "fake" in values, f"{secret['metadata']['name']} must hold obviously fake values"
        assert not re.search(r"AKIA[0-9A-Z]{16}", values), "looks like a real AWS key"


def test_network_policies_default_deny(builds):
    policies = {o["metadata"]["name"]: o for o in builds["production-aws"] if o["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    assert "allow-dns" in policies


def test_spark_job_is_referenced_when_rendered():
    """The data issue renders the SparkApplication into base/spark/; the base must include it once it exists."""
    resources = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    if (BASE / "spark" / "kustomization.yaml").exists():
        assert "spark/" in resources or "spark" in resources
    else:
        assert "spark/" not in resources


def test_serving_resources_validate_against_upstream_crds(crd_schemas, deployed):
    """The canary renderer writes the InferenceService (and any ServingRuntime) under manifests/serving/;
    `task cluster:deploy` applies them, wired like the leaf, so both the files and the wired objects are checked."""
    files = sorted((ROOT / "manifests" / "serving").glob("*.yaml"))
    if not files:
        pytest.skip("manifests/serving/ has no rendered InferenceService yet (the canary issue's renderer writes it)")
    objects = [(path.name, obj) for path in files for obj in yaml.safe_load_all(path.read_text()) if obj]
    for leaf, built in deployed.items():
        objects += [(leaf, o) for o in built if o["kind"] in ("InferenceService", "ServingRuntime")]
    assert {o["kind"] for _, o in objects} >= {"InferenceService", "ServingRuntime"}
    for where, obj in objects:
        errors = crd_errors(obj, crd_schemas)
        assert not errors, f"{where}: {obj['kind']}/{obj['metadata']['name']}:\n" + "\n".join(errors)


def test_crd_validation_accepts_a_kserve_canary_spec(crd_schemas):
    """The InferenceService CRD copy loads and accepts the spec shape the canary flow patches."""
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris-xgboost", "annotations": {"serving.kserve.io/enable-tag-routing": "true"}},
        "spec": {
            "predictor": {
                "serviceAccountName": "kserve-s3",
                "canaryTrafficPercent": 10,
                "model": {
                    "modelFormat": {"name": "xgboost"},
                    "protocolVersion": "v2",
                    "storageUri": "s3://ml-platform-lake/serving/iris-xgboost/v2",
                },
            }
        },
    }
    assert crd_errors(isvc, crd_schemas) == []
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    assert crd_errors(isvc, crd_schemas)


@pytest.mark.parametrize("overlay", LEAVES)
def test_the_deploy_job_runs_the_canary_in_the_cluster(builds, overlay):
    """CI/CD reach: the hosted runner reaches neither MLflow (ClusterIP) nor Prometheus; the suspended CronJob is the
    job `task cluster:canary` starts, with the platform image, the settings and the cluster's Secrets."""
    objects = {(o["kind"], o["metadata"]["name"]): o for o in builds[overlay]}
    cronjob = objects[("CronJob", "platform-deploy")]
    assert cronjob["spec"]["suspend"] is True, "a template only: runs start with kubectl create job --from"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    script = "\n".join(container["args"])
    for command in ("platform export --alias challenger", "platform canary start --alias challenger --percent 10",
                    "platform canary auto"):  # fmt: skip
        assert command in script, command
    settings = objects[("ConfigMap", "platform-settings")]["data"]
    assert container["image"] == settings["PLATFORM_IMAGE"]
    assert {"configMapRef": {"name": "platform-settings"}} in container["envFrom"]
    secrets = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert "mlflow-auth" in secrets
    assert settings["PLATFORM_PROMETHEUS_URL"].startswith("http://prometheus-operated.")
    # it patches the InferenceService through the API, and may do nothing else
    assert pod["serviceAccountName"] == "platform-deploy" and pod["automountServiceAccountToken"] is True
    role = objects[("Role", "platform-deploy")]
    assert role["rules"] == [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
                              "verbs": ["get", "list", "watch", "create", "patch"]}]  # fmt: skip
    binding = objects[("RoleBinding", "platform-deploy")]
    assert binding["roleRef"]["name"] == "platform-deploy" and binding["subjects"][0]["name"] == "platform-deploy"
