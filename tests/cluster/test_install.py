"""Operator install: versions in one file, every URL/chart built from them, shellcheck-clean, CRD copies match, and the
KServe install matches KServe v0.20.0 itself (../shared/specs/kserve/v0.20.0): its chart names, the value keys every
--set uses, and the dependency versions it is tested with. Once install.sh installed a chart `kserve` that no longer
exists (since v0.17 the charts are kserve-crd and kserve-resources)."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import yaml

from .conftest import ROOT, SPECS, parse_env, run

VERSIONS = ROOT / "manifests" / "versions.env"
INSTALL = ROOT / "manifests" / "install.sh"
KSERVE_SPECS = SPECS / "kserve" / "v0.20.0"
EXPECTED = {"CERT_MANAGER_VERSION", "KNATIVE_SERVING_VERSION", "KNATIVE_NET_KOURIER_VERSION", "KSERVE_VERSION",
            "PROMETHEUS_CHART_VERSION", "STACKABLE_VERSION", "STACKABLE_SPARK_VERSION", "KUBERAY_VERSION",
            "KFP_VERSION"}  # fmt: skip


def test_versions_file_pins_every_operator_exactly(versions):
    assert set(versions) == EXPECTED
    for key, value in versions.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{key}={value} is not an exact release version"


def test_every_url_and_chart_is_built_from_the_pinned_versions(install_dry_run, versions):
    commands = "\n".join(install_dry_run)
    remote = [c for c in install_dry_run if re.search(r"https?://|oci://|github\.com/", c)]
    assert len(remote) >= 12, commands
    for command in remote:
        assert any(v in command for v in versions.values()), f"unpinned remote source: {command}"
        local = command.replace(str(ROOT), "<repo>")  # the checkout's own path may contain any word
        assert not re.search(r"\b(latest|master|main|HEAD)\b", local), f"floating ref: {command}"
    # each pinned version is really used, in the place it belongs
    v = versions
    assert f"cert-manager/releases/download/{v['CERT_MANAGER_VERSION']}/cert-manager.yaml" in commands
    assert f"knative/serving/releases/download/knative-v{v['KNATIVE_SERVING_VERSION']}/serving-core.yaml" in commands
    assert f"net-kourier/releases/download/knative-v{v['KNATIVE_NET_KOURIER_VERSION']}/kourier.yaml" in commands
    assert re.search(rf"kube-prometheus-stack .*--version {re.escape(v['PROMETHEUS_CHART_VERSION'])}\b", commands)
    for chart in ("kserve-crd", "kserve-resources"):
        assert re.search(rf"kserve/charts/{chart} --version {re.escape(v['KSERVE_VERSION'])}\b", commands), chart
    for op in ("commons-operator", "secret-operator", "listener-operator", "spark-k8s-operator"):
        assert re.search(rf"sdp-charts/{op} --version {re.escape(v['STACKABLE_VERSION'])}\b", commands), op
    assert re.search(rf"kuberay-operator .*--version {re.escape(v['KUBERAY_VERSION'])}\b", commands)
    assert commands.count(f"?ref={v['KFP_VERSION']}") == 2


def test_install_is_idempotent_and_in_knative_mode(install_dry_run):
    for command in install_dry_run:
        if command.startswith("kubectl apply"):
            assert "--server-side" in command, f"apply must be server-side (re-runs converge): {command}"
        if command.startswith("helm "):
            assert command.startswith("helm upgrade --install"), command
        assert not command.startswith(("kubectl create ", "kubectl edit", "helm install ")), command
    joined = "\n".join(install_dry_run)
    assert "deploymentMode=Knative" in joined, "canaryTrafficPercent needs KServe's Knative (serverless) mode"
    assert "disableIstioVirtualHost=true" in joined, "with Kourier, KServe must not create Istio VirtualServices"
    assert re.search(r"patch configmap/config-domain --type merge", joined), "Knative domain is set by a patch"
    assert '{"data":{"ml.example.com":""}}' in joined, "the domain is KNATIVE_DOMAIN"
    assert "ingress-class" in joined and "kourier" in joined


def test_install_requires_knative_domain():
    """The old fallback <LB address>.sslip.io cannot work: sslip.io resolves IPs only (an EKS ELB has a hostname),
    and the gateway has no public address any more."""
    env = {k: v for k, v in os.environ.items() if k != "KNATIVE_DOMAIN"}
    res = run(["bash", str(INSTALL), "--dry-run"], cwd=ROOT, env=env, timeout=60)
    assert res.returncode != 0 and res.stdout == ""
    assert "KNATIVE_DOMAIN is not set" in res.stderr
    assert "sslip.io" not in re.sub(r"#.*", "", INSTALL.read_text()), "no sslip.io fallback in the script's code"


def test_install_script_fails_loudly():
    text = INSTALL.read_text()
    assert re.search(r"^set -euo pipefail$", text, re.M)
    assert 'source "$here/versions.env"' in text
    # no version literal outside versions.env
    for literal in re.findall(r"--version\s+(\S+)", text):
        assert literal.startswith('"$'), f"hard-coded version in install.sh: {literal}"


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck; CI installs it)")
    scripts = [INSTALL, ROOT / "manifests" / "deploy.sh", ROOT / "inference_service" / "prediction"]
    res = run([shellcheck, "-x", *map(str, scripts)], cwd=ROOT / "manifests")
    assert res.returncode == 0, res.stdout + res.stderr


def test_pinned_versions_match_the_crd_copies(versions):
    sources = SPECS / "SOURCES.md"
    if not sources.exists():
        pytest.skip(f"{sources} not found (the shared specs directory sits next to the project)")
    text = sources.read_text()
    row = {m.group(1): m.group(0) for m in re.finditer(r"^\| crds/(\S+) \|.*$", text, re.M)}
    kserve = re.sub(r"^v(\d+\.\d+)\.\d+$", r"\1", versions["KSERVE_VERSION"])
    assert f"SDK {kserve}." in row["serving.kserve.io_inferenceservices.yaml"], "KServe pin != CRD copy's line"
    kuberay = versions["KUBERAY_VERSION"]
    assert f"v{kuberay}" in row["ray.io_rayjobs.yaml"], "KubeRay pin != CRD copy's release"
    # Stackable CRDs were copied from main in 2026-05/06: the next platform release (YY.M) carries them.
    for name in ("stackable-spark-k8s-operator.crds.yaml", "stackable-commons-operator.crds.yaml"):
        year, month = map(int, re.search(r"\((\d{4})-(\d{2})-\d{2}", row[name]).groups())
        sdp_year, sdp_month = map(int, versions["STACKABLE_VERSION"].split(".")[:2])
        pin = versions["STACKABLE_VERSION"]
        assert (2000 + sdp_year, sdp_month) >= (year, month), f"Stackable {pin} predates {name}"
        assert (2000 + sdp_year) * 12 + sdp_month - (year * 12 + month) <= 4, f"Stackable pin far from {name}"
    assert f"tag {versions['STACKABLE_VERSION']}" in row["stackable-secret-operator.crds.yaml"]


# --- KServe against its own release -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kserve_release():
    if not KSERVE_SPECS.is_dir():
        pytest.skip(f"KServe v0.20.0 chart copies not found at {KSERVE_SPECS} (see ../shared/specs/SOURCES.md)")
    charts = {p.parent.name: yaml.safe_load(p.read_text()) for p in KSERVE_SPECS.glob("charts/*/Chart.yaml")}
    values = {p.parent.name: yaml.safe_load(p.read_text()) for p in KSERVE_SPECS.glob("charts/*/values.yaml")}
    deps = parse_env("\n".join(line for line in (KSERVE_SPECS / "kserve-deps.env").read_text().splitlines()
                               if re.fullmatch(r"[A-Z_]+=\S+|\s*(#.*)?", line)), "kserve-deps.env")  # fmt: skip
    return charts, values, deps


def kserve_errors(commands: list[str], charts: dict, values: dict, version: str) -> list[str]:
    """What in install.sh's KServe helm commands contradicts the release's charts."""
    errors = []
    installed = {}
    for command in commands:
        m = re.match(r"helm upgrade --install \S+ oci://ghcr\.io/kserve/charts/(\S+) --version (\S+)", command)
        if m:
            installed[m.group(1)] = command
            if m.group(1) not in charts:
                errors.append(f"chart {m.group(1)} does not exist in KServe {version} (charts: {sorted(charts)})")
            elif m.group(2) != charts[m.group(1)]["version"]:
                errors.append(f"{m.group(1)} --version {m.group(2)} != the chart's {charts[m.group(1)]['version']}")
    errors += [f"chart {name} is not installed" for name in charts if name not in installed]
    for name, command in installed.items():
        for key, _value in re.findall(r"--set (\S+?)=(\S+)", command):
            node = values.get(name, {})
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    errors.append(f"{name}: --set {key}: no such key in the chart's values.yaml")
                    break
                node = node[part]
    return errors


def test_kserve_charts_and_values_exist_in_the_release(install_dry_run, kserve_release, versions):
    charts, values, _ = kserve_release
    assert set(charts) == {"kserve-crd", "kserve-resources"}
    assert kserve_errors(install_dry_run, charts, values, versions["KSERVE_VERSION"]) == []
    mode = values["kserve-resources"]["kserve"]["controller"]["deploymentMode"]
    assert mode == "Knative" and "deploymentMode=Knative" in "\n".join(install_dry_run)


def test_the_kserve_check_catches_a_wrong_chart_or_key(install_dry_run, kserve_release, versions):
    charts, values, _ = kserve_release
    old = [c.replace("kserve/charts/kserve-resources", "kserve/charts/kserve") for c in install_dry_run]
    assert any("chart kserve does not exist" in e for e in kserve_errors(old, charts, values, "v0.20.0"))
    typo = [c.replace("gateway.disableIstioVirtualHost", "gateway.disableIstioVirtualHosts") for c in install_dry_run]
    assert any("no such key" in e for e in kserve_errors(typo, charts, values, "v0.20.0"))


def test_dependencies_are_the_versions_kserve_tests_with(kserve_release, versions):
    _, _, deps = kserve_release
    assert deps["KSERVE_VERSION"] == versions["KSERVE_VERSION"]
    assert versions["CERT_MANAGER_VERSION"] == deps["CERT_MANAGER_VERSION"]
    assert versions["KNATIVE_SERVING_VERSION"] == deps["KNATIVE_SERVING_VERSION"]
    assert versions["PROMETHEUS_CHART_VERSION"] == deps["PROMETHEUS_VERSION"], "kube-prometheus-stack chart version"
    # net-kourier ships patch releases on its own cadence: the same Knative minor is what must agree
    minor = versions["KNATIVE_SERVING_VERSION"].rsplit(".", 1)[0]
    assert versions["KNATIVE_NET_KOURIER_VERSION"].startswith(minor + "."), "Kourier must match Knative's minor"
