"""One source of values per deployment: bucket, S3 endpoint, region, namespace and images exist once per leaf (its
platform.env, the base's image pins, the wiring component's namespace) and every object of what `task cluster:deploy`
applies uses exactly those. Once, the settings said bucket ml-platform-lake, the SparkApplication s3a://mlops/ and the
InferenceService s3://mlops/, and the S3Connection's host sat in another region: the checker below fails on each."""

from __future__ import annotations

import copy
import re

import pytest

from .conftest import CLOUDS, LEAVES, ROOT, parse_env, settings_of
from .k8s_objects import images
from .test_terraform import _merged

MANIFESTS = ROOT / "manifests"
URI = re.compile(r"\bs3a?://(\$\(\w+\)|[\w.-]+)")
REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:north|south|east|west|central|northeast|southeast)-\d\b")
S3_HOST = re.compile(r"\b(?:[\w-]+\.)*s3[\w.-]*\.(?:amazonaws|ionoscloud)\.com\b")  # not eks./sts.amazonaws.com
SVC_HOST = re.compile(r"\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc\b")
IMAGE_KEYS = ("PLATFORM_IMAGE", "PLATFORM_SERVING_IMAGE", "PLATFORM_SPARK_IMAGE", "PLATFORM_MLFLOW_IMAGE")
_S3 = {"PLATFORM_BUCKET", "PLATFORM_S3_ENDPOINT", "AWS_DEFAULT_REGION"}
PER_DEPLOYMENT = {"ionos": _S3, "aws": _S3 | {"PLATFORM_ROLE_ARN"}}  # the values a leaf's platform.env must set


def _strings(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def stray_values(objects: list[dict]) -> list[str]:
    """Every bucket, S3 host, region, namespace or image in `objects` that is not the build's own setting."""
    s = settings_of(objects)
    bucket, region, namespace = s["PLATFORM_BUCKET"], s["AWS_DEFAULT_REGION"], s["PLATFORM_K8S_NAMESPACE"]
    endpoint = s["PLATFORM_S3_ENDPOINT"]
    host = endpoint.split("/")[2]
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    errors = []
    for obj in objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") not in (None, namespace):
            errors.append(f"{label}: namespace {obj['metadata']['namespace']} != {namespace}")
        for path, value in _strings(obj):
            # an unwired placeholder: the base writes the key's name where the wiring puts its value
            if not path.endswith((".name", ".key")):
                errors += [f"{label}{path}: placeholder {key} left in {value!r}" for key in s
                           if re.search(rf"(?:^|[/.]){key}(?:$|[/.:])", value)]  # fmt: skip
            errors += [f"{label}{path}: bucket {b!r} in {value!r}" for b in URI.findall(value)
                       if b not in (bucket, "$(PLATFORM_BUCKET)")]  # fmt: skip
            errors += [f"{label}{path}: region {r!r}" for r in REGION.findall(value) if r != region]
            errors += [f"{label}{path}: S3 host {h!r}" for h in S3_HOST.findall(value) if h != host]
            errors += [f"{label}{path}: {svc}.{ns}.svc, not in {namespace}" for svc, ns in SVC_HOST.findall(value)
                       if svc in services and ns != namespace]  # fmt: skip
        for where, image in images(obj):
            if image not in {s[k] for k in IMAGE_KEYS}:
                errors.append(f"{where}: image {image!r} is none of platform-settings' {IMAGE_KEYS}")
    return errors


@pytest.mark.parametrize("leaf", LEAVES)
def test_every_value_in_what_deploy_applies_is_the_leafs_own(deployed, leaf):
    objects = deployed[leaf]
    assert {o["kind"] for o in objects} >= {"InferenceService", "ServingRuntime", "SparkApplication", "S3Connection"}
    errors = stray_values(objects)
    assert not errors, f"{leaf}:\n" + "\n".join(errors)
    s = settings_of(objects)
    env = parse_env((MANIFESTS / "overlays" / leaf / "platform.env").read_text(), "platform.env")
    assert {k: s[k] for k in env} == env, "the ConfigMap carries the leaf's platform.env"
    assert s["PLATFORM_K8S_S3_HOST"] == env["PLATFORM_S3_ENDPOINT"].removeprefix("https://")


@pytest.mark.parametrize("leaf", LEAVES)
def test_spark_isvc_and_s3connection_use_the_wired_values(deployed, leaf):
    """The fields the wiring fills by position (spark args) or by part (host of the endpoint) hold what they should."""
    objects = deployed[leaf]
    s = settings_of(objects)
    app = next(o for o in objects if o["kind"] == "SparkApplication")["spec"]
    args = dict(zip(app["args"][::2], app["args"][1::2], strict=True))
    assert args["--raw"].startswith(f"s3a://{s['PLATFORM_BUCKET']}/") and args["--lake"].startswith("s3a://")
    assert args["--lake"] == s["PLATFORM_LAKE_DIR"].replace("s3://", "s3a://", 1)
    conn = next(o for o in objects if o["kind"] == "S3Connection")["spec"]
    assert (conn["host"], conn["region"]["name"]) == (s["PLATFORM_K8S_S3_HOST"], s["AWS_DEFAULT_REGION"])
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["storageUri"].startswith(f"s3://{s['PLATFORM_BUCKET']}/serving/")


def test_the_check_catches_every_kind_of_stray_value(deployed):
    """Each defect this guards against, put back into a correct build, is reported."""
    clean = deployed["production-ionos"]
    assert stray_values(clean) == []

    def mutated(kind, change):
        objects = copy.deepcopy(clean)
        change(next(o for o in objects if o["kind"] == kind))
        return "\n".join(stray_values(objects))

    def spark_bucket(o):
        o["spec"]["args"][5] = "s3a://mlops/lake"

    def isvc_bucket(o):
        o["spec"]["predictor"]["model"]["storageUri"] = "s3://mlops/serving/iris-xgboost/v1"

    def other_region_host(o):
        o["spec"]["host"] = "s3.eu-central-1.ionoscloud.com"

    def unwired_image(o):
        o["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "platform"

    def placeholder(o):
        o["data"]["KFP_PIPELINE_ROOT"] = "s3://PLATFORM_BUCKET/pipelines"

    assert "bucket 'mlops'" in mutated("SparkApplication", spark_bucket)
    assert "bucket 'mlops'" in mutated("InferenceService", isvc_bucket)
    assert "S3 host 's3.eu-central-1.ionoscloud.com'" in mutated("S3Connection", other_region_host)
    assert "image 'platform'" in mutated("RayJob", unwired_image)
    assert "placeholder PLATFORM_BUCKET" in mutated("ConfigMap", placeholder)


def test_values_are_set_in_one_place_per_leaf():
    """Bucket, endpoint, region (and the IRSA role) only in each leaf's platform.env; the namespace only in the
    wiring component; images only in the base's settings (a leaf may override them in its platform.env)."""
    base = (MANIFESTS / "base" / "kustomization.yaml").read_text()
    for key in PER_DEPLOYMENT["aws"]:
        assert not re.search(rf"^\s*- {key}=", base, re.M), f"{key} must not have a base default"
    for leaf in LEAVES:
        env = parse_env((MANIFESTS / "overlays" / leaf / "platform.env").read_text(), "platform.env")
        assert PER_DEPLOYMENT[leaf.split("-")[1]] <= set(env), f"{leaf}/platform.env lacks per-deployment values"
        kustomization = (MANIFESTS / "overlays" / leaf / "kustomization.yaml").read_text()
        assert not re.search(r"^namespace:", kustomization, re.M), f"{leaf}: the namespace is set in components/wiring"
        assert kustomization.rstrip().splitlines()[-1].strip() == "envs: [platform.env]"
        assert re.search(r"- \.\./\.\./components/wiring", kustomization), f"{leaf} must use the wiring component"
    for path in [*(MANIFESTS / "base").rglob("*.yaml"), *(MANIFESTS / "components").rglob("*.yaml")]:
        text = path.read_text()
        where = path.relative_to(ROOT)
        assert set(URI.findall(text)) <= {"PLATFORM_BUCKET", "$(PLATFORM_BUCKET)"}, f"{where} names a bucket"
        assert not REGION.search(text) and not S3_HOST.search(text), f"{where} names a region or an S3 host"
        if "components/wiring" not in str(where):
            assert not re.search(r"^namespace:", text, re.M), f"{where} sets a namespace"


def test_terraform_trusts_exactly_the_service_accounts_the_aws_builds_annotate(builds):
    """IRSA works only for a ServiceAccount the IAM role trusts and the pods use; once, `spark` was trusted and
    created nowhere. Both lists, and the namespace, must agree."""
    variables = {
        n: b for block in _merged(ROOT / "terraform" / "modules" / "aws")["variable"] for n, b in block.items()
    }
    trusted = set(variables["platform_service_accounts"]["default"])
    namespace = variables["platform_namespace"]["default"]
    for leaf in (leaf for leaf in LEAVES if leaf.endswith("-aws")):
        accounts = {o["metadata"]["name"]: o for o in builds[leaf] if o["kind"] == "ServiceAccount"}
        annotated = {
            n for n, o in accounts.items() if "eks.amazonaws.com/role-arn" in o["metadata"].get("annotations", {})
        }
        assert annotated == set(accounts) == trusted, leaf
        assert {o["metadata"]["namespace"] for o in accounts.values()} == {namespace}
        role = settings_of(builds[leaf])["PLATFORM_ROLE_ARN"]
        assert {o["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for o in accounts.values()} == {role}
    assert CLOUDS == ("ionos", "aws")
