"""The cluster ETL: the committed SparkApplication + S3Connection are exactly what the settings render, run the
local job's entry point and arguments, and validate against the upstream CRD schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from data_platform import k8s
from data_platform.etl import job_args
from platform_core import settings

CRDS = settings.REPO_ROOT.parent / "shared" / "specs" / "crds"
_RENDER_SETTINGS = [n for n in settings.REGISTRY if n.startswith(("PLATFORM_K8S_", "PLATFORM_SPARK_"))]


@pytest.fixture
def defaults(monkeypatch):
    for name in [*_RENDER_SETTINGS, "PLATFORM_DATASET", "PLATFORM_SPLIT_VALID", "PLATFORM_SPLIT_TEST",
                 "PLATFORM_CONTRACTS_DIR"]:  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_committed_manifests_equal_the_rendered_ones(defaults):
    for name, text in k8s.rendered().items():
        assert (k8s.OUT_DIR / name).read_text() == text, f"{name} is stale: run `task etl:render-k8s`"
    assert sorted(p.name for p in k8s.OUT_DIR.iterdir()) == sorted(k8s.rendered())
    assert (k8s.CONTRACTS / "kustomization.yaml").read_text() == k8s.rendered_contracts(), "run `task etl:render-k8s`"


def test_job_is_the_local_job_on_s3a_with_credentials_only_through_the_cloud_component(defaults):
    """The job's arguments are the local job's, with the lake's and raw file's bucket left to the overlay (the
    wiring component fills PLATFORM_BUCKET); no credential of any kind is rendered here."""
    app = k8s.spark_application()["spec"]
    lake = settings.K8S_LAKE.get()
    # The raw input is the contract's raw server (path raw/iris.data) under the deployment's bucket.
    assert app["args"] == job_args("iris", "s3a://PLATFORM_BUCKET/raw/iris.data", k8s.in_bucket(lake))
    assert k8s.in_bucket("s3a://mlops/raw/iris.data") == "s3a://PLATFORM_BUCKET/raw/iris.data"
    assert app["mainApplicationFile"].endswith("/data_platform/etl.py")
    assert all(a.startswith("s3a://PLATFORM_BUCKET/") for a in app["args"][3::2])
    assert app["sparkImage"]["custom"] == "PLATFORM_SPARK_IMAGE", "the image comes from the overlay's settings"
    assert app["sparkImage"]["productVersion"] == k8s.product_version()
    text = "\n".join(k8s.rendered().values()).lower()
    assert "access.key" not in text and "secret.key" not in text and "aws_secret" not in text
    assert "credentials" not in k8s.s3_connection()["spec"], "the cloud component adds S3 access (IRSA or SecretClass)"


def test_product_version_is_the_pinned_one():
    pinned = [line.split("=", 1)[1] for line in k8s.VERSIONS.read_text().splitlines()
              if line.startswith("STACKABLE_SPARK_VERSION=")]  # fmt: skip
    assert [k8s.product_version()] == pinned


def _schema(crd_file: str, kind: str) -> dict:
    for doc in yaml.load_all((CRDS / crd_file).read_text(), Loader=yaml.CSafeLoader):  # C loader: MBs of YAML
        if doc and doc["spec"]["names"]["kind"] == kind:
            return next(v for v in doc["spec"]["versions"] if v.get("storage"))["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{kind} not in {crd_file}")


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"upstream CRDs not present at {CRDS} (see ../shared/specs/SOURCES.md)")
@pytest.mark.parametrize(
    ("file", "crd", "kind"),
    [
        ("sparkapplication.yaml", "stackable-spark-k8s-operator.crds.yaml", "SparkApplication"),
        ("s3connection.yaml", "stackable-commons-operator.crds.yaml", "S3Connection"),
    ],  # fmt: skip
)
def test_manifests_validate_against_the_upstream_crd_schema(defaults, file, crd, kind):
    schema = _schema(crd, kind)
    validator = jsonschema.validators.validator_for(schema)(schema)  # built once, not re-checked per call
    for doc in (yaml.safe_load((k8s.OUT_DIR / file).read_text()), yaml.safe_load(k8s.rendered()[file])):
        validator.validate(doc)
        with pytest.raises(jsonschema.ValidationError):  # the schema really constrains: a wrong type fails
            validator.validate({**doc, "spec": {**doc["spec"], "mode": 3, "host": 3}})


def test_render_writes_the_three_files_and_the_contracts_kustomization(defaults, tmp_path):
    (tmp_path / "contracts").mkdir()
    written = k8s.write_manifests(tmp_path / "out", tmp_path / "contracts")
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == [
        "contracts/kustomization.yaml", "out/kustomization.yaml", "out/s3connection.yaml", "out/sparkapplication.yaml"
    ]  # fmt: skip


def test_the_job_reads_the_contracts_raw_path_and_the_contracts_configmap(defaults, monkeypatch, tmp_path):
    """The contract names the raw input (a setting overrides it), and the contracts reach the driver and the
    executors as a ConfigMap that kustomize generates from contracts/ (no image holds them)."""
    app = k8s.spark_application()["spec"]
    env = {e["name"]: e["value"] for e in app["env"]}
    (volume,) = app["volumes"]
    assert volume["configMap"]["name"] == k8s.CONTRACTS_CONFIGMAP
    for role in ("driver", "executor"):
        (mount,) = app[role]["config"]["volumeMounts"]
        assert (mount["name"], mount["mountPath"]) == (volume["name"], env["PLATFORM_CONTRACTS_DIR"])
    built = subprocess.run([str(Path(sys.executable).with_name("kubectl")), "kustomize", str(k8s.OUT_DIR)],
                           capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    configmap = next(d for d in yaml.safe_load_all(built) if d["kind"] == "ConfigMap")
    assert configmap["metadata"]["name"] == k8s.CONTRACTS_CONFIGMAP
    assert sorted(configmap["data"]) == sorted(p.name for p in k8s.CONTRACTS.glob("*.yaml")
                                               if p.name != "kustomization.yaml")  # fmt: skip
    assert configmap["data"]["iris.yaml"] == (k8s.CONTRACTS / "iris.yaml").read_text()
    monkeypatch.setenv("PLATFORM_K8S_RAW_PATH", "s3a://mlops/exports/iris.csv")
    assert k8s.spark_application()["spec"]["args"][3] == "s3a://PLATFORM_BUCKET/exports/iris.csv"
