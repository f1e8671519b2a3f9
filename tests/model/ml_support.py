"""Shared by the ML platform tests: a published dataset in the session lake, an isolated experiment/model
name per module (so the end-to-end demo later in the session starts from an empty registry), and boosters of
both served objectives with the rows that test a predict call hardest."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def isolated_names(prefix: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLATFORM_EXPERIMENT", f"{prefix}-experiment")
        mp.setenv("PLATFORM_MODEL_NAME", f"{prefix}-model")
        yield


def publish_dataset() -> None:
    """The ETL through its CLI function (idempotent: the same input reuses its version)."""
    from data_platform import cli as data_cli

    data_cli.etl()


def write_config(path, **changes) -> str:
    """A copy of ml_platform/search.yaml with some keys replaced (dotted keys for nested ones)."""
    import yaml

    from platform_core import settings

    raw = yaml.safe_load(settings.SEARCH_CONFIG.get().read_text())
    for dotted, value in changes.items():
        node, *rest = dotted.split(".")
        if rest:
            raw[node][rest[0]] = value
        else:
            raw[node] = value
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def objective_boosters() -> dict:
    """{objective: (booster, the data it was trained on)} for both objectives a served model has."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer, load_iris

    iris, cancer = load_iris(), load_breast_cancer()
    multi = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "seed": 1},
        xgb.DMatrix(iris.data, label=iris.target),
        num_boost_round=30,
    )
    binary = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 1},
        xgb.DMatrix(cancer.data, label=cancer.target),
        num_boost_round=20,
    )
    return {"multi:softprob": (multi, iris.data), "binary:logistic": (binary, cancer.data)}


def hard_rows(booster, data):
    """Rows whose values sit exactly on the trees' split thresholds (either side of `<`), plus missing values."""
    import numpy as np

    rng = np.random.default_rng(0)
    splits = booster.trees_to_dataframe().query("Feature != 'Leaf'")
    rows = np.repeat(data[:1], len(splits), axis=0).astype(np.float32)
    for i, (feature, threshold) in enumerate(zip(splits["Feature"], splits["Split"], strict=True)):
        rows[i, int(feature.lstrip("f"))] = np.float32(threshold)
    missing = data[rng.integers(0, len(data), 50)].astype(np.float32)
    missing[rng.random(missing.shape) < 0.3] = np.nan
    return np.concatenate([rows, np.nextafter(rows, np.float32(-np.inf)), missing])
