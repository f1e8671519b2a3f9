"""The serving bundle's metadata file: written by the ML platform's export, read by the model server.

It lives one level below the bundle root (`metadata/bundle.json`): KServe's xgboost loader takes the one
top-level file ending in .bst/.json/.ubj, and a `.json` beside the booster would count as a second model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from platform_core.errors import DataError

BUNDLE_FILE = "metadata/bundle.json"  # relative to the bundle root (= the InferenceService storageUri)
REQUIRED = ("model_name", "registry_version", "feature_names", "class_labels")


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
