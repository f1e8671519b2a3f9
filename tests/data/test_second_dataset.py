"""A second dataset of another shape (binary, 24 features, other names, `;`-separated with a header whose columns
are in another order, one named by physicalName) goes through ETL -> tune -> gate -> export -> serve -> predict
with settings changes only, no code change."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_platform import cli as data_cli
from data_platform.generate import generate
from inference_service import cli as serving_cli
from ml_platform import cli as ml_cli
from ml_platform.dataset import load_splits
from platform_core import settings
from tests.data.conftest import reshape

pytestmark = [pytest.mark.integration]


def test_generated_binary_dataset_runs_the_whole_flow_on_settings_alone(local_stack, spark, monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_DATASET", "wide")
    monkeypatch.setenv("PLATFORM_CONTRACTS_DIR", str(tmp_path / "contracts"))
    monkeypatch.setenv("PLATFORM_MODEL_NAME", "wide-xgboost")
    monkeypatch.setenv("PLATFORM_EXPERIMENT", "wide-xgboost")
    side = generate(tmp_path / "gen" / "wide.data", tmp_path / "gen", "wide", rows=800, features=24, classes=2,
                    defect_rate=0.02, seed=5, delimiter=";")  # fmt: skip
    # As an export writes it: label first, columns in another order, a non-identifier header name (physicalName)
    # and a column the contract does not name.
    names = [f"x{i:02d}" for i in range(24)]
    raw, _ = reshape(side, tmp_path, [["target", *reversed(names), "id"]], {"x03": "x03 (mg/l)"})
    monkeypatch.setenv("PLATFORM_RAW_PATH", str(raw))

    etl = data_cli.etl()
    assert (etl.dataset, etl.rows_curated) == ("wide", side["good_rows"])
    tuned = ml_cli.tune()
    assert tuned.trials == settings.TUNE_SAMPLES.get() and "test_accuracy" in tuned.best_metrics
    # The first model of a dataset is judged on floors; this dataset's are a rules file named by a setting.
    rules = tmp_path / "wide-gate.yaml"
    rules.write_text("primary: {metric: mlogloss, min_relative_improvement: 0.005}\n"
                     "secondary: [{metric: accuracy, max_drop: 0.01}]\n"
                     "floors: {accuracy: {min: 0.6}, mlogloss: {max: 0.69}}\n")  # fmt: skip
    monkeypatch.setenv("PLATFORM_GATE_CONFIG", str(rules))
    report = ml_cli.gate(promote=True)
    assert report.outcome == "passed" and report.champion is None
    assert report.challenger["version"]
    ml_cli.export()
    served = serving_cli.serve()
    ((revision, percent),) = [(t["revisionName"], t["percent"]) for t in served["traffic"]]
    assert revision.startswith("wide-xgboost-predictor-") and percent == 100

    splits = load_splits()
    assert splits.feature_names == [f"x{i:02d}" for i in range(24)] and splits.classes == ["c0", "c1"]
    rows = splits.x_test[:20]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                                               "data": rows.ravel().tolist()}]}))  # fmt: skip
    response = serving_cli.predict(request)
    proba = np.asarray(response["outputs"][0]["data"]).reshape(len(rows), -1)
    assert proba.shape == (20, 2) and set(response["outputs"][1]["data"]) <= {"c0", "c1"}
    assert np.mean(proba.argmax(axis=1) == splits.y_test[:20]) >= 0.7  # the generated signal was learned
