"""The curated dataset as training arrays, with one deterministic holdout that every stage shares.

The holdout is fixed by the seed and never used for search decisions, so a later gate can compare a challenger
and the champion on exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from data_platform.etl import FEATURES, LABEL, curated_path, read_manifest


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    classes: list[str]
    source_sha256: str


def load_splits(lake: str, holdout_fraction: float, seed: int) -> Splits:
    """Curated rows -> train / validation (search decisions) / holdout (final evaluation), stratified."""
    manifest = read_manifest(lake)
    frame = pd.read_parquet(curated_path(lake), columns=[*FEATURES, LABEL]).sort_values([*FEATURES, LABEL])
    x, y = frame[list(FEATURES)].to_numpy(np.float32), frame[LABEL].to_numpy(np.int32)
    x_rest, x_hold, y_rest, y_hold = train_test_split(x, y, test_size=holdout_fraction, random_state=seed, stratify=y)
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest
    )
    return Splits(x_train, y_train, x_valid, y_valid, x_hold, y_hold, manifest["classes"], manifest["source_sha256"])
