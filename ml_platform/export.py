"""Export stage: a registered version -> a serving bundle on S3 in the KServe xgboost layout.

MLflow's model dir holds model.ubj next to MLmodel and *.json input examples, but KServe's xgboost runtime
requires exactly one .bst/.json/.ubj file per directory, so the booster is re-saved alone under
s3://<bucket>/serving/<model>/v<version>/model.ubj. That prefix is the InferenceService's storageUri.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.xgboost

from ml_platform.registry import CHAMPION, resolve_alias
from platform_core import settings, storage

MODEL_FILE = "model.ubj"


@dataclass
class Exported:
    model_name: str
    version: str
    storage_uri: str
    objects: list[str]


def serving_uri(model_name: str, version: str) -> str:
    return f"s3://{settings.BUCKET.get()}/serving/{model_name}/v{version}"


def export_model(model_name: str, alias: str = CHAMPION) -> Exported:
    version = resolve_alias(model_name, alias)
    booster = mlflow.xgboost.load_model(f"models:/{model_name}/{version}")
    uri = serving_uri(model_name, version)
    with tempfile.TemporaryDirectory() as tmp:
        booster.save_model(str(Path(tmp) / MODEL_FILE))
        objects = storage.upload_dir(Path(tmp), uri)
    return Exported(model_name, version, uri, objects)
