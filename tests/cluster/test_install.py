"""Operator install: versions in one file, every URL/chart built from them, shellcheck-clean, CRD copies match."""

from __future__ import annotations

import re
import shutil

import pytest

from .conftest import ROOT, SPECS, run

VERSIONS = ROOT / "manifests" / "versions.env"
INSTALL = ROOT / "manifests" / "install.sh"
EXPECTED = {"CERT_MANAGER_VERSION", "KNATIVE_SERVING_VERSION", "KNATIVE_NET_KOURIER_VERSION", "KSERVE_VERSION",
            "STACKABLE_VERSION", "KUBERAY_VERSION", "KFP_VERSION"}  # fmt: skip


def parse_env(text: str) -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s'\"$`]+)", line)
        assert m, f"versions.env:{n}: not a plain KEY=value line: {line!r}"
        out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def versions() -> dict[str, str]:
    return parse_env(VERSIONS.read_text())


@pytest.fixture(scope="module")
def dry_run() -> list[str]:
    res = run(["bash", str(INSTALL), "--dry-run"], cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line[2:] for line in res.stdout.splitlines() if line.startswith("+ ")]


def test_versions_file_pins_every_operator_exactly(versions):
    assert set(versions) == EXPECTED
    for key, value in versions.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{key}={value} is not an exact release version"


def test_every_url_and_chart_is_built_from_the_pinned_versions(dry_run, versions):
    commands = "\n".join(dry_run)
    remote = [c for c in dry_run if re.search(r"https?://|oci://|github\.com/", c)]
    assert len(remote) >= 11, commands
    for command in remote:
        assert any(v in command for v in versions.values()), f"unpinned remote source: {command}"
        assert not re.search(r"\b(latest|master|main|HEAD)\b", command), f"floating ref: {command}"
    # each pinned version is really used, in the place it belongs
    v = versions
    assert f"cert-manager/releases/download/{v['CERT_MANAGER_VERSION']}/cert-manager.yaml" in commands
    assert f"knative/serving/releases/download/knative-v{v['KNATIVE_SERVING_VERSION']}/serving-core.yaml" in commands
    assert f"net-kourier/releases/download/knative-v{v['KNATIVE_NET_KOURIER_VERSION']}/kourier.yaml" in commands
    assert re.search(rf"kserve/charts/kserve --version {re.escape(v['KSERVE_VERSION'])}\b", commands)
    assert re.search(rf"kserve/charts/kserve-crd --version {re.escape(v['KSERVE_VERSION'])}\b", commands)
    for op in ("commons-operator", "secret-operator", "listener-operator", "spark-k8s-operator"):
        assert re.search(rf"sdp-charts/{op} --version {re.escape(v['STACKABLE_VERSION'])}\b", commands), op
    assert re.search(rf"kuberay-operator .*--version {re.escape(v['KUBERAY_VERSION'])}\b", commands)
    assert commands.count(f"?ref={v['KFP_VERSION']}") == 2


def test_install_is_idempotent_and_serverless(dry_run):
    for command in dry_run:
        if command.startswith("kubectl apply"):
            assert "--server-side" in command, f"apply must be server-side (re-runs converge): {command}"
        if command.startswith("helm "):
            assert command.startswith("helm upgrade --install"), command
        assert not command.startswith(("kubectl create ", "kubectl edit", "helm install ")), command
    joined = "\n".join(dry_run)
    assert "deploymentMode=Serverless" in joined, "canaryTrafficPercent needs KServe serverless mode"
    assert "disableIstioVirtualHost=true" in joined, "with Kourier, KServe must not create Istio VirtualServices"
    assert re.search(r"patch configmap/config-domain --type merge", joined), "Knative domain is set by a patch"
    assert "ingress-class" in joined and "kourier" in joined


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
    scripts = [INSTALL, ROOT / "inference_service" / "prediction"]
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
