"""The ETL as a Stackable SparkApplication (spark-k8s operator), rendered from settings into a kustomize base.

The driver runs the same module with the same arguments as the local run (`etl.job_args`); only the lake moves to
`s3a://`. The S3 endpoint and keys reach Spark through an S3Connection whose credentials come from a Stackable
SecretClass, so no key ever appears in the manifest or in sparkConf.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from data_platform.etl import job_args
from platform_core import settings

OUT_DIR = settings.REPO_ROOT / "manifests" / "base" / "spark"
APP_ROOT = "/opt/platform"  # where the image holds the project (data_platform/, contracts/)
S3_CONNECTION = "platform-lake"
HEADER = "# Rendered by `task etl:render-k8s` from the platform settings; edit the settings, not this file.\n"


def s3_connection() -> dict:
    return {
        "apiVersion": "s3.stackable.tech/v1alpha1",
        "kind": "S3Connection",
        "metadata": {"name": S3_CONNECTION},
        "spec": {
            "host": settings.K8S_S3_HOST.get(),
            "port": settings.K8S_S3_PORT.get(),
            "accessStyle": "Path",
            "credentials": {"secretClass": settings.K8S_S3_SECRET_CLASS.get()},
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
    return {
        "apiVersion": "spark.stackable.tech/v1alpha1",
        "kind": "SparkApplication",
        "metadata": {"name": f"platform-etl-{dataset}".replace("_", "-")},
        "spec": {
            "mode": "cluster",
            "sparkImage": {
                "custom": settings.SPARK_IMAGE.get(),
                "productVersion": settings.SPARK_PRODUCT_VERSION.get(),
                "pullPolicy": "IfNotPresent",
            },
            "mainApplicationFile": f"local://{APP_ROOT}/data_platform/etl.py",
            "args": job_args(dataset, settings.K8S_RAW_PATH.get(), settings.K8S_LAKE.get()),
            "s3connection": {"reference": S3_CONNECTION},
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "sparkConf": {"spark.sql.shuffle.partitions": "8"},
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
