"""Export stage: a registered version -> a self-describing serving bundle on S3 in the KServe xgboost layout
(`platform_core.bundle` holds the layout: MODEL_FILE, BUNDLE_FILE, storage_uri).

KServe's xgboost runtime (and our predictor) loads the one top-level file ending in .bst/.json/.ubj and fails on
a second one, so MLflow's model dir (model.ubj + MLmodel + *.json examples) cannot be served as is — and
`bundle.json` itself cannot sit next to the booster: its `.json` suffix would count as a second model file. One
level down it travels with the bundle (the storage initializer copies the whole prefix) without being a model.
Feature names and class labels come from the manifest of the dataset version the model was trained on (its
lineage tags), never from code.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.xgboost

from data_platform.lake import read_manifest
from ml_platform import registry, tracking
from ml_platform.registry import resolve_alias
from platform_core import settings, storage
from platform_core.bundle import BUNDLE_FILE, CHAMPION, MODEL_FILE, storage_uri
from platform_core.errors import DataError, PlatformError


@dataclass
class Exported:
    model_name: str
    version: str
    storage_uri: str
    objects: list[str]
    bundle: dict[str, Any]


def bundle_metadata(model_name: str, version: str) -> dict[str, Any]:
    """Model name, registry version, feature names, class labels, dataset and its hash, created_at."""
    mv = registry.client().get_model_version(model_name, version)
    tags = mv.tags
    if tracking.DATASET_VERSION not in tags:
        raise PlatformError(f"{model_name} v{version} has no dataset lineage", "gate a run of `task tune` (task gate)")
    dataset, dataset_version = tags[tracking.DATASET], int(tags[tracking.DATASET_VERSION])
    try:
        manifest = read_manifest(settings.lake_dir(), dataset, dataset_version)
    except DataError as exc:
        raise DataError(
            f"the manifest of {dataset} v{dataset_version} ({model_name} v{version}'s training data) is gone",
            "keep that dataset version (`task etl:gc` keeps the newest ones) or gate a model of a newer version",
        ) from exc
    return {
        "model_name": model_name,
        "registry_version": str(version),
        "model_file": MODEL_FILE,
        "feature_names": list(manifest["features"]),
        "class_labels": list(manifest["classes"]),
        "dataset": dataset,
        "dataset_version": dataset_version,
        "dataset_hash": manifest["content_hash"],
        "source_run_id": mv.run_id,
        "git_commit": tags.get(tracking.GIT_COMMIT, "unknown"),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_model(model_name: str | None = None, alias: str = CHAMPION) -> Exported:
    """The export stage: the version `alias` points at -> its serving bundle on S3."""
    model_name = model_name or settings.MODEL_NAME.get()
    return export_version(model_name, resolve_alias(model_name, alias))


def is_exported(model_name: str, version: str) -> bool:
    return bool(storage.list_keys(f"{storage_uri(model_name, version)}/{MODEL_FILE}"))


def ensure_exported(model_name: str, version: str) -> Exported | None:
    """The bundle of `version`, exported now if it is not on S3 yet (None: it already was). What a rollout
    calls before it serves a version."""
    return None if is_exported(model_name, version) else export_version(model_name, version)


def export_version(model_name: str, version: str) -> Exported:
    bundle = bundle_metadata(model_name, version)
    booster = mlflow.xgboost.load_model(f"models:/{model_name}/{version}")
    uri = storage_uri(model_name, version)
    with tempfile.TemporaryDirectory() as tmp:
        booster.save_model(str(Path(tmp) / MODEL_FILE))
        (Path(tmp) / BUNDLE_FILE).parent.mkdir()
        (Path(tmp) / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2) + "\n")
        objects = storage.upload_dir(Path(tmp), uri)
    return Exported(model_name, version, uri, objects, bundle)
