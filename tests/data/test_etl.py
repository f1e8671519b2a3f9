"""ETL on a real local Spark session: curated + quarantined rows always add up to the input."""

import json
from pathlib import Path

import pandas as pd
import pytest

from data_platform.etl import FEATURES, curated_path, quarantine_path, read_manifest, run_etl
from data_platform.raw import write_raw_iris
from ml_platform.dataset import load_splits
from platform_core.errors import DataError

BAD_LINES = [
    "abc,3.0,1.0,0.2,Iris-setosa",  # not a number
    "5.0,3.0,1.0",  # too few fields
    "5.0,3.0,1.0,0.2,Iris-setosa,extra",  # too many fields
    "5.0,3.0,1.0,0.2,Iris-rosea",  # unknown class
    "-5.0,3.0,1.0,0.2,Iris-setosa",  # impossible measurement
    ",3.0,1.0,0.2,Iris-setosa",  # missing value
]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("etl")
    raw = write_raw_iris(root / "iris.data")
    with raw.open("a") as f:
        f.write("\n".join(BAD_LINES) + "\n")
    result = run_etl(str(raw), str(root / "lake"))
    return root, result


def test_counts_add_up_and_bad_rows_are_quarantined_with_reasons(lake):
    _, result = lake
    assert (result.rows_in, result.rows_curated, result.rows_quarantined) == (156, 150, 6)
    quarantined = pd.read_parquet(result.quarantine_path)
    assert len(quarantined) == 6
    reasons = set(quarantined["reason"])
    assert "wrong number of fields" in reasons
    assert "unknown species" in reasons
    assert "sepal_length is missing or not a number" in reasons
    assert "sepal_length must be > 0" in reasons
    assert quarantined["reason"].notna().all()


def test_curated_data_meets_the_contract(lake):
    _, result = lake
    curated = pd.read_parquet(result.curated_path)
    assert list(curated.columns) == [*FEATURES, "species", "label"]
    assert curated[list(FEATURES)].dtypes.eq("float64").all()
    assert (curated[list(FEATURES)] > 0).all().all()
    assert curated["label"].value_counts().to_dict() == {0: 50, 1: 50, 2: 50}


def test_manifest_describes_the_dataset(lake):
    root, result = lake
    manifest = read_manifest(str(root / "lake"))
    assert manifest["rows_in"] == manifest["rows_curated"] + manifest["rows_quarantined"] == 156
    assert manifest["features"] == list(FEATURES)
    assert len(manifest["source_sha256"]) == 64
    assert json.loads(Path(result.manifest_path).read_text()) == manifest


def test_failed_run_leaves_previous_dataset_untouched(lake, tmp_path):
    root, result = lake
    before = sorted(p.name for p in Path(result.curated_path).iterdir())
    empty = tmp_path / "empty.data"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no rows"):
        run_etl(str(empty), str(root / "lake"))
    assert sorted(p.name for p in Path(result.curated_path).iterdir()) == before
    assert not any((root / "lake" / "_staging").iterdir())


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        run_etl(str(tmp_path / "nope.data"), str(tmp_path / "lake"))


def test_read_without_etl_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="task etl"):
        read_manifest(str(tmp_path))
    assert not Path(curated_path(str(tmp_path))).exists() and not Path(quarantine_path(str(tmp_path))).exists()


def test_holdout_is_deterministic_stratified_and_disjoint(lake):
    root, _ = lake
    a = load_splits(str(root / "lake"), holdout_fraction=0.3, seed=7)
    b = load_splits(str(root / "lake"), holdout_fraction=0.3, seed=7)
    assert (a.x_holdout == b.x_holdout).all() and (a.y_holdout == b.y_holdout).all()
    assert len(a.y_holdout) == 45 and sorted(set(a.y_holdout.tolist())) == [0, 1, 2]
    assert len(a.y_train) + len(a.y_valid) + len(a.y_holdout) == 150
    holdout_rows = {tuple(r) for r in a.x_holdout.tolist()}
    train_rows = {tuple(r) for r in a.x_train.tolist()}
    # iris has a few duplicate rows, so compare counts of exact-row overlap against the duplicate budget
    assert len(holdout_rows & train_rows) <= 3
