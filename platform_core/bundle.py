"""The serving bundle's contract, its one home: layout, file names, storage URI and the registry aliases that
choose what is served. Written by the ML platform's export, read by the model server and the rollout.

    s3://<bucket>/serving/<model>/v<version>/model.ubj                 the booster alone (MODEL_FILE)
    s3://<bucket>/serving/<model>/v<version>/metadata/bundle.json      what the model is (BUNDLE_FILE)

The metadata lives one level below the bundle root: KServe's xgboost loader takes the one top-level file ending
in .bst/.json/.ubj, and a `.json` beside the booster would count as a second model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from platform_core import settings
from platform_core.errors import DataError

MODEL_FILE = "model.ubj"  # the booster, at the bundle root
BUNDLE_FILE = "metadata/bundle.json"  # relative to the bundle root (= the InferenceService storageUri)
# Registry aliases: the gate moves CHALLENGER, promotion moves CHAMPION (the old one becomes PREVIOUS).
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
REQUIRED = ("model_name", "registry_version", "feature_names", "class_labels")


def storage_uri(model_name: str, version: str, bucket: str | None = None) -> str:
    """Where a version's bundle lives: the InferenceService's storageUri."""
    return f"s3://{bucket or settings.BUCKET.get()}/serving/{model_name}/v{version}"


def read_bundle(model_dir: str | Path) -> dict[str, Any]:
    """The metadata of a downloaded bundle dir; a missing or incomplete file is one clear error."""
    path = Path(model_dir) / BUNDLE_FILE
    try:
        bundle = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing: not a serving bundle", "export one with `task export`") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}", "export the model again (`task export`)") from exc
    missing = [k for k in REQUIRED if k not in bundle]
    if missing:
        raise DataError(f"{path} lacks {missing}", "export the model again (`task export`)")
    return bundle
