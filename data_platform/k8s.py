"""The ETL as a Stackable SparkApplication (spark-k8s operator), rendered from settings into a kustomize base.

The driver runs the same module with the same arguments as the local run (`etl.job_args`); only the lake moves to
`s3a://`, and the raw input is the contract's raw server as the cluster sees it (`contract.cluster_raw_path`). The
contracts come from a ConfigMap that kustomize generates from `contracts/` (`contracts/kustomization.yaml`, also
rendered here), mounted into the driver and the executors: a new dataset needs no new image.

Values that differ per deployment (bucket, S3 host, region, image) are written as the name of the
platform-settings key that holds them: `manifests/components/wiring` copies the overlay's values over them at build
time, so each deployment sets them once (its `platform.env`). S3 access is added by the cloud component: a Stackable
SecretClass on IONOS (static keys, never in the manifest or in sparkConf), IRSA on AWS.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from data_platform.contract import cluster_raw_path, load_contract
from data_platform.etl import job_args
from data_platform.spark import CODEGEN_MAX_FIELDS, HUGE_METHOD_LIMIT, JIT_OPTIONS
from platform_core import settings

MANIFESTS = settings.REPO_ROOT / "manifests"
OUT_DIR = MANIFESTS / "base" / "spark"
CONTRACTS = settings.REPO_ROOT / "contracts"  # the repository's contracts: what the ConfigMap carries
CONTRACTS_CONFIGMAP = "platform-contracts"
CONTRACTS_MOUNT = "/etc/platform/contracts"
VERSIONS = MANIFESTS / "versions.env"
APP_ROOT = "/opt/platform"  # where the image holds the project (data_platform/, contracts/)
S3_CONNECTION = "platform-lake"
# Placeholders = the platform-settings keys the wiring component reads (manifests/components/wiring).
BUCKET, S3_HOST, REGION, IMAGE = "PLATFORM_BUCKET", "PLATFORM_K8S_S3_HOST", "AWS_DEFAULT_REGION", "PLATFORM_SPARK_IMAGE"
# `task cluster:deploy` creates run-once objects only when absent: re-deploying never restarts or rewrites the ETL.
CREATE_ONLY = {"platform/create-only": "true"}
HEADER = "# Rendered by `task etl:render-k8s` from the platform settings; edit the settings, not this file.\n"


def product_version() -> str:
    """The Stackable Spark version, pinned next to the operator versions (checked against Stackable's list)."""
    for line in VERSIONS.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "STACKABLE_SPARK_VERSION":
            return value.strip()
    raise KeyError(f"STACKABLE_SPARK_VERSION not in {VERSIONS}")


def in_bucket(uri: str) -> str:
    """`uri` with its bucket replaced by the placeholder the wiring fills (its path is kept)."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{BUCKET}{parts.path}"


def s3_connection() -> dict:
    return {
        "apiVersion": "s3.stackable.tech/v1alpha1",
        "kind": "S3Connection",
        "metadata": {"name": S3_CONNECTION},
        "spec": {
            "host": S3_HOST,
            "port": settings.K8S_S3_PORT.get(),
            "accessStyle": "Path",
            "region": {"name": REGION},
            "tls": {"verification": {"server": {"caCert": {"webPki": {}}}}},
        },
    }


def spark_application() -> dict:
    dataset = settings.DATASET.get()
    env = {
        "PYTHONPATH": APP_ROOT,
        "PLATFORM_PROFILE": "cluster",
        "PLATFORM_CONTRACTS_DIR": CONTRACTS_MOUNT,
        "PLATFORM_SPLIT_VALID": str(settings.SPLIT_VALID.get()),
        "PLATFORM_SPLIT_TEST": str(settings.SPLIT_TEST.get()),
    }
    contract = load_contract(CONTRACTS / f"{dataset}.yaml")
    raw, lake = in_bucket(cluster_raw_path(contract, BUCKET)), in_bucket(settings.K8S_LAKE.get())

    def mounts():
        return [{"name": "contracts", "mountPath": CONTRACTS_MOUNT, "readOnly": True}]

    def jvm():  # generated code with huge methods must be JIT-compiled (see data_platform.spark)
        return {"add": [JIT_OPTIONS]}

    return {
        "apiVersion": "spark.stackable.tech/v1alpha1",
        "kind": "SparkApplication",
        "metadata": {"name": f"platform-etl-{dataset}".replace("_", "-"), "labels": dict(CREATE_ONLY)},
        "spec": {
            "mode": "cluster",
            "sparkImage": {"custom": IMAGE, "productVersion": product_version(), "pullPolicy": "IfNotPresent"},
            "mainApplicationFile": f"local://{APP_ROOT}/data_platform/etl.py",
            "args": job_args(dataset, raw, lake),
            "s3connection": {"reference": S3_CONNECTION},
            "env": [{"name": k, "value": v} for k, v in env.items()],
            # Spark 3.5 defaults ANSI off; the job is written (and tested locally) for Spark 4's ANSI semantics.
            "sparkConf": {
                "spark.sql.shuffle.partitions": "8",
                "spark.sql.ansi.enabled": "true",
                "spark.sql.codegen.maxFields": CODEGEN_MAX_FIELDS,
                "spark.sql.codegen.hugeMethodLimit": HUGE_METHOD_LIMIT,
            },  # fmt: skip
            "volumes": [{"name": "contracts", "configMap": {"name": CONTRACTS_CONFIGMAP}}],
            "driver": {
                "config": {
                    "resources": {"cpu": {"min": "1", "max": "2"}, "memory": {"limit": "2Gi"}},
                    "volumeMounts": mounts(),
                },
                "jvmArgumentOverrides": jvm(),
            },  # fmt: skip
            "executor": {
                "replicas": 2,
                "config": {
                    "resources": {"cpu": {"min": "1", "max": "2"}, "memory": {"limit": "4Gi"}},
                    "volumeMounts": mounts(),
                },
                "jvmArgumentOverrides": jvm(),
            },  # fmt: skip
        },
    }


def kustomization() -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # contracts/ holds its own kustomization: kustomize reads files only below a kustomization's root.
        "resources": ["../../../contracts", "s3connection.yaml", "sparkapplication.yaml"],
    }


def contracts_kustomization(contracts: Path = CONTRACTS) -> dict:
    """The ConfigMap of every contract in `contracts` (one key per file). A stable name: the SparkApplication, a
    custom resource, refers to it, and kustomize rewrites hashed names only in the kinds it knows."""
    files = sorted(p.name for p in contracts.glob("*.yaml") if p.name != "kustomization.yaml")
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "configMapGenerator": [
            {"name": CONTRACTS_CONFIGMAP, "options": {"disableNameSuffixHash": True}, "files": files}
        ],  # fmt: skip
    }


def rendered() -> dict[str, str]:
    """File name -> YAML text, exactly as `write_manifests` writes it."""
    docs = {
        "s3connection.yaml": s3_connection(),
        "sparkapplication.yaml": spark_application(),
        "kustomization.yaml": kustomization(),
    }
    return {name: HEADER + yaml.safe_dump(doc, sort_keys=False) for name, doc in docs.items()}


def rendered_contracts() -> str:
    """contracts/kustomization.yaml, exactly as `write_manifests` writes it."""
    header = "# Rendered by `task etl:render-k8s` from the contracts in this directory: add one, re-render.\n"
    return header + yaml.safe_dump(contracts_kustomization(), sort_keys=False)


def write_manifests(out: Path = OUT_DIR, contracts: Path = CONTRACTS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (out / name).write_text(text)
        written.append(out / name)
    (contracts / "kustomization.yaml").write_text(rendered_contracts())
    return [*written, contracts / "kustomization.yaml"]
