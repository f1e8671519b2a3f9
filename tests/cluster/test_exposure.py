"""Nothing anonymous from outside: every LoadBalancer or NodePort Service and every Ingress, in the builds and in what
install.sh installs (its upstream manifests, flags and values), needs an authentication story, an annotation saying
how callers are authenticated. There are none today; Kourier's upstream gateway (a public LoadBalancer that would have
served every InferenceService to anyone) is patched to ClusterIP before it is applied. The NetworkPolicies let
Prometheus scrape the predictors and the canary job query Prometheus, and keep other namespaces out."""

from __future__ import annotations

import copy
import re
import shutil

import pytest
import yaml

from .conftest import LEAVES, ROOT, run, tool
from .k8s_objects import allowed

AUTH = "platform.kfserve-bundle/authentication"
CLUSTER = ROOT / "manifests" / "cluster"
# Every upstream source install.sh installs, with what it exposes by default (reviewed against the pinned releases).
# A new source fails test_every_installed_source_was_reviewed until it is added here.
REVIEWED = {
    "cert-manager/releases": "ClusterIP only",
    "knative/serving/releases": "ClusterIP only (activator, webhook, controller)",
    "net-kourier/releases": "Service kourier-system/kourier is type LoadBalancer: patched to ClusterIP",
    "kube-prometheus-stack": "ClusterIP unless values say otherwise: checked below",
    "kserve/charts": "ClusterIP only (controller, webhook)",
    "sdp-charts": "no Service for an application unless a product CR asks for one (none does)",
    "kuberay-operator": "ClusterIP (operator metrics)",
    "kubeflow/pipelines": "ClusterIP only (ml-pipeline, ml-pipeline-ui, minio, mysql)",
}


def exposures(objects: list[dict]) -> list[str]:
    """Objects reachable from outside the cluster without an authentication story."""
    out = []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        exposed = kind == "Ingress" or (kind == "Service" and obj["spec"].get("type") in ("LoadBalancer", "NodePort"))
        if exposed and not (meta.get("annotations") or {}).get(AUTH, "").strip():
            out.append(f"{kind}/{meta['name']} ({obj.get('spec', {}).get('type', 'Ingress')}) has no {AUTH} annotation")
    return out


def helm_exposures(command: str) -> list[str]:
    """--set flags and -f values files of a helm command that open a Service or an Ingress."""
    out = []
    for key, value in re.findall(r"--set (\S+?)=(\S+)", command):
        if key.endswith("service.type") and value in ("LoadBalancer", "NodePort"):
            out.append(f"--set {key}={value}")
        if key.endswith("ingress.enabled") and value == "true":
            out.append(f"--set {key}={value}")

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") in ("LoadBalancer", "NodePort"):
                out.append(f"{path}.type={node['type']}")
            if path.endswith("ingress") and node.get("enabled") is True:
                out.append(f"{path}.enabled=true")
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    for values in re.findall(r"(?:-f|--values) (\S+)", command):
        with open(values) as fh:
            walk(yaml.safe_load(fh), "")
    return out


@pytest.mark.parametrize("leaf", LEAVES)
def test_builds_expose_nothing_without_authentication(deployed, leaf):
    assert exposures(deployed[leaf]) == []
    assert (
        next(o for o in deployed[leaf] if o["kind"] == "Service" and o["metadata"]["name"] == "mlflow")["spec"]["type"]
        == "ClusterIP"
    )


def test_the_exposure_check_bites(deployed):
    objects = copy.deepcopy(deployed["production-aws"])
    service = next(o for o in objects if o["kind"] == "Service")
    service["spec"]["type"] = "LoadBalancer"
    objects.append({"kind": "Ingress", "metadata": {"name": "mlflow"}, "spec": {}})
    assert len(exposures(objects)) == 2
    service["metadata"]["annotations"] = {AUTH: "oauth2-proxy in front, OIDC of example.com"}
    assert len(exposures(objects)) == 1
    assert helm_exposures("helm upgrade --install x y --set prometheus.service.type=LoadBalancer") != []
    assert helm_exposures("helm upgrade --install x y --set grafana.ingress.enabled=true") != []


def test_every_installed_source_was_reviewed(install_dry_run):
    remote = [c for c in install_dry_run if re.search(r"https?://|oci://|github\.com/|--repo ", c)]
    assert remote
    for command in remote:
        assert any(source in command for source in REVIEWED), f"unreviewed upstream source: {command}"


def test_helm_installs_open_nothing(install_dry_run):
    helm = [c for c in install_dry_run if c.startswith("helm ")]
    assert helm
    for command in helm:
        assert helm_exposures(command) == [], command
    prometheus = next(c for c in helm if "kube-prometheus-stack" in c)
    values = yaml.safe_load((CLUSTER / "prometheus-values.yaml").read_text())
    assert f"-f {CLUSTER / 'prometheus-values.yaml'}" in prometheus
    assert values["prometheus"]["service"]["type"] == "ClusterIP"
    for component in ("grafana", "alertmanager", "nodeExporter"):  # a login UI, a webhook sink, hostPort 9100
        assert values[component]["enabled"] is False, component


def test_kourier_gateway_becomes_cluster_ip_before_it_is_applied(install_dry_run, tmp_path):
    kubectl = tool("kubectl")
    if kubectl is None or shutil.which("bash") is None:
        pytest.skip("kubectl not found (./setup-env installs it into .venv)")
    commands = "\n".join(install_dry_run)
    download = re.search(r"curl -fsSL -o (\S+)/kourier\.yaml \S+net-kourier/releases/\S+/kourier\.yaml", commands)
    assert download, "install.sh must fetch kourier.yaml and patch it, not apply it as is"
    work = download.group(1)
    assert f"cp {CLUSTER / 'kourier-service.yaml'} {work}/kourier-service.yaml" in commands
    assert f"cp {CLUSTER / 'kourier-kustomization.yaml'} {work}/kustomization.yaml" in commands
    assert f"kubectl apply --server-side -k {work}" in commands
    assert not re.search(r"apply .*-f \S*kourier\.yaml", commands)
    # the same kustomization over a stand-in of upstream's manifest (its Service as net-kourier ships it)
    upstream = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kourier-system"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace": "kourier-system"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "3scale-kourier-gateway"},
                  "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier-internal", "namespace": "kourier-system"},
         "spec": {"type": "ClusterIP", "ports": [{"name": "http2", "port": 80, "targetPort": 8081}]}},
    ]  # fmt: skip
    (tmp_path / "kourier.yaml").write_text(yaml.safe_dump_all(upstream))
    shutil.copy(CLUSTER / "kourier-service.yaml", tmp_path / "kourier-service.yaml")
    shutil.copy(CLUSTER / "kourier-kustomization.yaml", tmp_path / "kustomization.yaml")
    assert len(exposures(upstream)) == 1
    res = run([kubectl, "kustomize", str(tmp_path)])
    assert res.returncode == 0, res.stderr
    patched = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert exposures(patched) == []
    gateway = next(d for d in patched if d["metadata"]["name"] == "kourier")
    assert gateway["spec"]["ports"] == upstream[1]["spec"]["ports"], "only the type changes"


# --- NetworkPolicies ------------------------------------------------------------------------------------------------

PREDICTOR = {"labels": {"serving.kserve.io/inferenceservice": "iris-xgboost",
                        "serving.knative.dev/revision": "iris-xgboost-predictor-00002"}}  # fmt: skip
PROMETHEUS = {"namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus",
                                                    "prometheus": "kube-prometheus-stack-prometheus"}}  # fmt: skip


def _policies(objects):
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_prometheus_scrapes_predictors_and_the_deploy_job_queries_it(builds, install_dry_run, leaf):
    objects = builds[leaf]
    policies = _policies(objects)
    namespace = next(o for o in objects if o["kind"] == "Namespace")["metadata"]["name"]
    predictor = {**PREDICTOR, "namespace": namespace}
    prometheus_ns = re.search(r"kube-prometheus-stack .*--namespace (\S+)", "\n".join(install_dry_run)).group(1)
    prometheus = {**PROMETHEUS, "namespace": prometheus_ns}
    assert allowed(policies, prometheus, predictor, 8080), "Prometheus must reach the predictors' /metrics"
    cronjob = next(o for o in objects if o["kind"] == "CronJob" and o["metadata"]["name"] == "platform-deploy")
    job_pod = {
        "namespace": namespace,
        "labels": cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
    }
    assert allowed(policies, job_pod, prometheus, 9090), "the canary job must reach Prometheus"
    url = next(o for o in objects if o["metadata"]["name"] == "platform-settings")["data"]["PLATFORM_PROMETHEUS_URL"]
    assert url == f"http://prometheus-operated.{prometheus_ns}.svc:9090", "PLATFORM_PROMETHEUS_URL = the installed one"
    # and nothing else gets in: other namespaces, other ports, other pods of the monitoring namespace
    stranger = {"namespace": "default", "labels": {"app.kubernetes.io/name": "prometheus"}}
    assert not allowed(policies, stranger, predictor, 8080)
    assert not allowed(policies, prometheus, predictor, 8022)
    assert not allowed(policies, {"namespace": prometheus_ns, "labels": {"app": "grafana"}}, predictor, 8080)
    mlflow = {"namespace": namespace, "labels": {"app.kubernetes.io/name": "mlflow"}}
    assert not allowed(policies, prometheus, mlflow, 5000)


def test_without_the_scrape_policy_prometheus_would_be_denied(builds):
    """The evaluator bites: the policies as they were (default deny, no rule for the monitoring namespace)."""
    policies = [
        p for p in _policies(builds["production-aws"]) if p["metadata"]["name"] != "allow-prometheus-to-predictors"
    ]
    assert not allowed(policies, PROMETHEUS, {**PREDICTOR, "namespace": "ml-platform"}, 8080)
    kourier = {"namespace": "kourier-system", "labels": {"app": "3scale-kourier-gateway"}}
    assert allowed(policies, kourier, {**PREDICTOR, "namespace": "ml-platform"}, 8012)
