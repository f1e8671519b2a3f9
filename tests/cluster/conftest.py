"""Fixtures for the offline checks of the cluster bundle (terraform/, manifests/, workflows, devbox, Taskfile).

Nothing here reaches a cluster or a cloud. Expensive steps run once per session: `terraform init` (in a temp copy
of terraform/, so the shared working tree never gets .terraform/ or lock files), the kustomize builds, checkov.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
SPECS = ROOT.parent / "shared" / "specs"
CRD_DIR = SPECS / "crds"
OVERLAYS = ("dev", "production")
CLOUDS = ("ionos", "aws")
# A leaf = one deployable build: manifests/overlays/<overlay>-<cloud>.
LEAVES = tuple(f"{overlay}-{cloud}" for overlay in OVERLAYS for cloud in CLOUDS)
NAMESPACE = "ml-platform"
# The Kubernetes version built-in kinds are validated against (matches the clusters' default versions).
K8S_VERSION = "1.34.0"
CHECKOV_VERSION = "3.3.30"
ZIZMOR_VERSION = "1.32.0"
# A filesystem mirror with hashicorp/aws (this machine); elsewhere terraform init downloads from the registry.
TF_MIRROR_CANDIDATES = (Path("/opt/tf-plugins"),)


def tool(name: str) -> str | None:
    """A tool from the venv first, then PATH."""
    venv = VENV_BIN / name
    if venv.exists():
        return str(venv)
    return shutil.which(name)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: int = 300, **kw):
    return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    path = shutil.which("terraform")
    if path is None:
        print("SKIP terraform checks: the terraform binary is not on PATH")
        pytest.skip("terraform binary not on PATH (install Terraform >= 1.9 to run the Terraform checks)")
    return path


@pytest.fixture(scope="session")
def terraform_env(tmp_path_factory) -> dict:
    """Environment for terraform: a real CLI config file (no warning), the mirror when this machine has one."""
    cfg = tmp_path_factory.mktemp("tfcli") / "terraformrc"
    aws = "registry.terraform.io/hashicorp/aws"
    mirror = next((m for m in TF_MIRROR_CANDIDATES if (m / aws).is_dir()), None)
    if mirror:
        cfg.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{aws}"]\n  }}\n'
            f'  direct {{\n    exclude = ["{aws}"]\n  }}\n'
            "}\n"
        )
    else:
        cfg.write_text("# no local mirror: providers come from the registry\n")
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(cfg), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    env.pop("TF_DATA_DIR", None)
    return env


@pytest.fixture(scope="session")
def terraform_copy(tmp_path_factory) -> Path:
    """terraform/ copied to a session temp dir (init writes .terraform/ and a lock file there, not in the repo)."""
    dest = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(ROOT / "terraform", dest, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "tfplan"))
    return dest


@pytest.fixture(scope="session")
def aws_initialized(terraform_bin, terraform_env, terraform_copy) -> dict[str, Path]:
    """`terraform init` once per session for the AWS module and the AWS example root."""
    dirs = {"module": terraform_copy / "modules" / "aws", "example": terraform_copy / "examples" / "aws"}
    for where in dirs.values():
        res = run([terraform_bin, "init", "-input=false", "-no-color", "-backend=false"], cwd=where, env=terraform_env)
        assert res.returncode == 0, f"terraform init failed in {where}:\n{res.stdout}\n{res.stderr}"
    return dirs


def _kubectl() -> str:
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found (./setup-env installs it into .venv)")
    return kubectl


def _build(leaf: str) -> list[dict]:
    res = run([_kubectl(), "kustomize", str(ROOT / "manifests" / "overlays" / leaf)])
    assert res.returncode == 0, f"kubectl kustomize {leaf} failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def deploy_print(leaf: str, **env) -> list[dict]:
    """What `task cluster:deploy` applies for a leaf: the leaf plus the serving files, wired alike."""
    overlay, cloud = leaf.split("-")
    env = dict(os.environ, KUBECTL=_kubectl(), **env)
    res = run(["bash", str(ROOT / "manifests" / "deploy.sh"), overlay, cloud, "--print"], env=env, timeout=120)
    assert res.returncode == 0, f"deploy.sh {leaf} --print failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="session")
def builds() -> dict[str, list[dict]]:
    """Every leaf built once with kubectl kustomize: {"dev-ionos": [objects], ...}."""
    return {leaf: _build(leaf) for leaf in LEAVES}


@pytest.fixture(scope="session")
def deployed() -> dict[str, list[dict]]:
    """Every leaf as cluster:deploy applies it (kustomize build + manifests/serving/, through manifests/deploy.sh)."""
    return {leaf: deploy_print(leaf) for leaf in LEAVES}


def settings_of(objects: list[dict]) -> dict[str, str]:
    """The data of a build's platform-settings ConfigMap: the one source of its values."""
    return next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "platform-settings")["data"]


def parse_env(text: str, name: str = "versions.env") -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s'\"$`]+)", line)
        assert m, f"{name}:{n}: not a plain KEY=value line: {line!r}"
        out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="session")
def versions() -> dict[str, str]:
    return parse_env((ROOT / "manifests" / "versions.env").read_text())


@pytest.fixture(scope="session")
def install_dry_run() -> list[str]:
    """The commands `install.sh --dry-run` prints (KNATIVE_DOMAIN set, as it must be)."""
    env = dict(os.environ, KNATIVE_DOMAIN="ml.example.com")
    res = run(["bash", str(ROOT / "manifests" / "install.sh"), "--dry-run"], cwd=ROOT, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line[2:] for line in res.stdout.splitlines() if line.startswith("+ ")]


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): openAPIV3Schema} from the upstream CRD copies in ../shared/specs/crds/."""
    if not CRD_DIR.is_dir():
        pytest.skip(f"upstream CRDs not found at {CRD_DIR} (the shared specs directory sits next to the project)")
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"][
                    "openAPIV3Schema"
                ]
    return schemas


@pytest.fixture(scope="session")
def task_targets() -> set[str]:
    task = tool("task")
    if task is None:
        pytest.skip("go-task not found (./setup-env installs it into .venv)")
    res = run([task, "--list-all", "--json"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return {t["name"] for t in json.loads(res.stdout)["tasks"]}
