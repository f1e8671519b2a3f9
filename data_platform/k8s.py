"""The ETL as a Stackable SparkApplication (spark-k8s operator), rendered from settings into a kustomize base.

The driver runs the same module with the same arguments as the local run (`etl.job_args`); only the lake moves to
`s3a://`. Values that differ per deployment (bucket, S3 host, region, image) are written as the name of the
platform-settings key that holds them: `manifests/components/wiring` copies the overlay's values over them at build
time, so each deployment sets them once (its `platform.env`). S3 access is added by the cloud component: a Stackable
SecretClass on IONOS (static keys, never in the manifest or in sparkConf), IRSA on AWS.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from data_platform.etl import job_args
from platform_core import settings

MANIFESTS = settings.REPO_ROOT / "manifests"
OUT_DIR = MANIFESTS / "base" / "spark"
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
        "PLATFORM_CONTRACTS_DIR": f"{APP_ROOT}/contracts",
        "PLATFORM_SPLIT_VALID": str(settings.SPLIT_VALID.get()),
        "PLATFORM_SPLIT_TEST": str(settings.SPLIT_TEST.get()),
    }
    raw, lake = in_bucket(settings.K8S_RAW_PATH.get()), in_bucket(settings.K8S_LAKE.get())
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
            "sparkConf": {"spark.sql.shuffle.partitions": "8", "spark.sql.ansi.enabled": "true"},
            "driver": {"config": {"resources": {"cpu": {"min": "1", "max": "2"}, "memory": {"limit": "2Gi"}}}},
            "executor": {
                "replicas": 2,
                "config": {"resources": {"cpu": {"min": "1", "max": "2"}, "memory": {"limit": "4Gi"}}},
            },
        },
    }


def kustomization() -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["s3connection.yaml", "sparkapplication.yaml"],
    }


def rendered() -> dict[str, str]:
    """File name -> YAML text, exactly as `write_manifests` writes it."""
    docs = {
        "s3connection.yaml": s3_connection(),
        "sparkapplication.yaml": spark_application(),
        "kustomization.yaml": kustomization(),
    }
    return {name: HEADER + yaml.safe_dump(doc, sort_keys=False) for name, doc in docs.items()}


def write_manifests(out: Path = OUT_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (out / name).write_text(text)
        written.append(out / name)
    return written
