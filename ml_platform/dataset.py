"""The published dataset as training arrays: the ETL's train / valid / test splits, read through the `_latest`
pointer (never by listing directories), so training sees only fully committed versions.

The split was decided by the ETL from a hash of each row's key, so every stage (search, gate) and every re-run
sees the same rows in the same split. Trials train on train and are compared on valid; test is for the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.dataset as ds

from data_platform.lake import read_manifest
from platform_core import settings


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    classes: list[str]
    dataset: str
    version: int
    content_hash: str


def load_splits(lake: str | None = None, dataset: str | None = None, version: int | None = None) -> Splits:
    """The splits of the version `_latest` names (or of `version`: the gate scores on the challenger's version,
    a resumed search on the one it started with), rows ordered by row hash (independent of file layout)."""
    lake, dataset = lake or settings.lake_dir(), dataset or settings.DATASET.get()
    manifest = read_manifest(lake, dataset, version)
    features = manifest["features"]
    table = ds.dataset(manifest["path"], format="parquet", partitioning="hive").to_table(
        columns=[*features, "class_index", "row_hash", "split"]
    )
    frame = table.to_pandas().sort_values("row_hash", kind="stable")
    arrays = {}
    for split in ("train", "valid", "test"):
        part = frame[frame["split"] == split]
        arrays[f"x_{split}"] = part[features].to_numpy(np.float32)
        arrays[f"y_{split}"] = part["class_index"].to_numpy(np.int32)
    return Splits(
        **arrays,
        feature_names=list(features),
        classes=list(manifest["classes"]),
        dataset=dataset,
        version=manifest["version"],
        content_hash=manifest["content_hash"],
    )
