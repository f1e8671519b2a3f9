"""The cloud is a dimension of every build: AWS gets S3 through IRSA and references no static key at all (KServe
rejects an InferenceService whose ServiceAccount lists a missing Secret, and fake dev keys would win over IRSA);
IONOS gets one key Secret that MLflow, Ray, KServe and Spark (through a Stackable SecretClass) all read. The Spark
ETL can start: its SecretClass exists and validates, and its Spark version is one Stackable supports."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import LEAVES, ROOT, SPECS, settings_of
from .k8s_objects import references
from .test_manifests import crd_errors

STACKABLE = SPECS / "stackable"
SECRET_CLASS = ROOT / "manifests" / "cluster" / "secretclass.yaml"
# Which supported-versions file describes which Stackable release (../shared/specs/SOURCES.md).
RELEASE_LISTS = {
    "26.3": "spark-k8s-26.3.0-supported-versions.adoc",
    "26.7": "spark-k8s-main-2026-06-12-supported-versions.adoc",
}


def _find(objects, kind, name=None):
    return next(o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


@pytest.mark.parametrize("leaf", [leaf for leaf in LEAVES if leaf.endswith("-aws")])
def test_aws_builds_reference_no_static_key(deployed, leaf):
    objects = deployed[leaf]
    refs = [r for o in objects for r in references(o) if r[0] in ("Secret", "SecretClass")]
    assert not [r for r in refs if r[1] in ("s3-credentials", "platform-s3-credentials")], refs
    assert not [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "s3-credentials"]
    text = yaml.safe_dump_all(objects)
    assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    # IRSA instead: the role on KServe's account, with the endpoint and region KServe reads from it
    s = settings_of(objects)
    sa = _find(objects, "ServiceAccount", "kserve-s3")
    assert "secrets" not in sa
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": s["PLATFORM_ROLE_ARN"],
        "serving.kserve.io/s3-usehttps": "1",
        "serving.kserve.io/s3-endpoint": s["PLATFORM_K8S_S3_HOST"],
        "serving.kserve.io/s3-region": s["AWS_DEFAULT_REGION"],
    }
    isvc = _find(objects, "InferenceService")
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "kserve-s3"
    # Spark: no credentials in the S3Connection, the web-identity provider, pods as the IRSA account `spark`
    assert "credentials" not in _find(objects, "S3Connection")["spec"]
    app = _find(objects, "SparkApplication")["spec"]
    assert app["sparkConf"]["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "WebIdentityTokenFileCredentialsProvider"
    )
    for role in ("driver", "executor"):
        assert app[role]["podOverrides"]["spec"]["serviceAccountName"] == "spark"
    binding = _find(objects, "RoleBinding", "spark")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spark", "namespace": s["PLATFORM_K8S_NAMESPACE"]}
    ]


@pytest.mark.parametrize("leaf", [leaf for leaf in LEAVES if leaf.endswith("-ionos")])
def test_ionos_builds_read_one_key_secret_everywhere(deployed, leaf):
    objects = deployed[leaf]
    assert _find(objects, "ServiceAccount", "kserve-s3")["secrets"] == [{"name": "s3-credentials"}]
    assert _find(objects, "S3Connection")["spec"]["credentials"] == {"secretClass": "platform-s3-credentials"}
    key_refs = {
        (r[2], r[3].split(" env ")[0])
        for o in objects
        for r in references(o)
        if r[:2] == ("Secret", "s3-credentials") and r[2]
    }
    keys = {k for k, _ in key_refs}
    assert keys == {"accessKey", "secretKey"}, "one naming for every reader: Stackable's (KServe is told so too)"
    readers = {where.split("/")[0] for _, where in key_refs}
    assert readers >= {"Deployment", "CronJob", "RayJob"}, readers
    assert not any("eks.amazonaws.com/role-arn" in o["metadata"].get("annotations", {}) for o in objects)
    if leaf.startswith("dev-"):
        example = _find(objects, "Secret", "s3-credentials")
        assert set(example["stringData"]) == {"accessKey", "secretKey"}


def test_kserve_reads_the_stackable_key_names(install_dry_run):
    """KServe's storage initializer looks for AWS_ACCESS_KEY_ID unless told otherwise; the one Secret has
    accessKey/secretKey (the names the Stackable SecretClass needs)."""
    kserve = next(c for c in install_dry_run if "kserve/charts/kserve-resources" in c)
    assert "--set kserve.storage.s3.accessKeyIdName=accessKey" in kserve
    assert "--set kserve.storage.s3.secretAccessKeyName=secretKey" in kserve


def test_secret_class_exists_validates_and_is_installed(crd_schemas, install_dry_run, deployed):
    secret_class = yaml.safe_load(SECRET_CLASS.read_text())
    assert secret_class["kind"] == "SecretClass"
    assert not crd_errors(secret_class, crd_schemas), crd_errors(secret_class, crd_schemas)
    broken = {**secret_class, "spec": {"backend": {"k8sSearch": {}}}}
    assert crd_errors(broken, crd_schemas), "the CRD check must reject a k8sSearch without searchNamespace"
    # the operator finds the Secret by its label, in the namespace of the pod that mounts it
    assert secret_class["spec"]["backend"] == {"k8sSearch": {"searchNamespace": {"pod": {}}}}
    assert f"kubectl apply --server-side -f {SECRET_CLASS}" in install_dry_run
    installed_after = install_dry_run.index(f"kubectl apply --server-side -f {SECRET_CLASS}")
    operator = next(i for i, c in enumerate(install_dry_run) if "sdp-charts/secret-operator" in c)
    assert operator < installed_after, "the SecretClass CRD comes with the secret operator"
    for leaf in (leaf for leaf in LEAVES if leaf.endswith("-ionos")):
        conn = _find(deployed[leaf], "S3Connection")
        assert conn["spec"]["credentials"]["secretClass"] == secret_class["metadata"]["name"]


def _supported(adoc: str) -> dict[str, dict[str, str]]:
    """{spark version: {Python: 3.11, Java: 17, ...}} from a Stackable supported-versions list."""
    out = {}
    for m in re.finditer(r"^- (\d+\.\d+\.\d+) \(([^)]*)\)", adoc, re.M):
        out[m.group(1)] = dict(part.strip().split(" ", 1) for part in m.group(2).split(","))
    return out


def test_spark_version_is_supported_by_the_pinned_stackable_release(versions, builds):
    if not STACKABLE.is_dir():
        pytest.skip(f"Stackable's supported-versions lists not found at {STACKABLE} (see ../shared/specs/SOURCES.md)")
    release = ".".join(versions["STACKABLE_VERSION"].split(".")[:2])
    assert release in RELEASE_LISTS, f"no supported-versions list for Stackable {release}: add its copy"
    supported = _supported((STACKABLE / RELEASE_LISTS[release]).read_text())
    assert supported, "the supported-versions list did not parse"
    assert "4.0.0" not in supported, "the pin that once stood here is in no list"
    spark = versions["STACKABLE_SPARK_VERSION"]
    assert spark in supported, f"Spark {spark} is not supported by Stackable {release}: {sorted(supported)}"
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert supported[spark]["Python"] == python, f"the ETL image runs Python {supported[spark]['Python']}, not {python}"
    for leaf, objects in builds.items():
        assert _find(objects, "SparkApplication")["spec"]["sparkImage"]["productVersion"] == spark, leaf


def test_supported_versions_parser():
    parsed = _supported("- 3.5.8 (Hadoop 3.4.2, Scala 2.12, Python 3.11, Java 17) (LTS)\n- 4.1.1 (Python 3.12)\n")
    assert parsed == {"3.5.8": {"Hadoop": "3.4.2", "Scala": "2.12", "Python": "3.11", "Java": "17"},
                      "4.1.1": {"Python": "3.12"}}  # fmt: skip
