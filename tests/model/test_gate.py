"""The champion/challenger gate: rules as pure decisions, then real models in the session's MLflow registry
(better / worse / tie within margin / no champion / challenger equals champion), promotion, the serving bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import mlflow.xgboost
import pytest
import xgboost as xgb
import yaml
from mlflow import MlflowClient

from ml_platform import tracking
from ml_platform.gate import GateRejected, Rules, decide, load_rules, run_gate
from ml_platform.registry import promote
from platform_core import settings
from platform_core.errors import ConfigError
from tests.model.ml_support import isolated_names, publish_dataset

RULES = Rules(primary="mlogloss", min_relative_improvement=0.005, secondary={"accuracy": 0.01},
              floors={"accuracy": {"min": 0.8}, "mlogloss": {"max": 0.6}})  # fmt: skip


# --- the rules alone ---------------------------------------------------------------------------------
def test_better_passes_worse_fails_tie_within_margin_fails():
    champion = {"mlogloss": 0.2000, "accuracy": 0.95}
    assert decide(RULES, {"mlogloss": 0.1900, "accuracy": 0.95}, champion).outcome == "passed"
    worse = decide(RULES, {"mlogloss": 0.2100, "accuracy": 0.95}, champion)
    assert worse.outcome == "rejected" and "0.2100" in worse.failed.detail and "0.2000" in worse.failed.detail
    tie = decide(RULES, {"mlogloss": 0.1995, "accuracy": 0.95}, champion)  # 0.25% better: inside the margin
    assert tie.outcome == "rejected" and tie.failed.rule.startswith("mlogloss must improve by >= 0.5%")


def test_secondary_tolerance_and_first_model_floors():
    champion = {"mlogloss": 0.2000, "accuracy": 0.95}
    assert decide(RULES, {"mlogloss": 0.1500, "accuracy": 0.94}, champion).outcome == "passed"  # -1 point: allowed
    dropped = decide(RULES, {"mlogloss": 0.1500, "accuracy": 0.93}, champion)
    assert dropped.outcome == "rejected" and dropped.failed.rule.startswith("accuracy may not worsen")
    assert decide(RULES, {"mlogloss": 0.3, "accuracy": 0.9}, None).outcome == "passed"
    low = decide(RULES, {"mlogloss": 0.3, "accuracy": 0.7}, None)
    assert low.outcome == "rejected" and low.failed.rule == "floor accuracy >= 0.8"


@pytest.mark.parametrize(
    ("text", "key"),
    [("primary: {metric: auc, min_relative_improvement: 0.1}\n", "primary.metric"),
     ("primary: {metric: mlogloss, min_relative_improvement: -1}\n", "primary.min_relative_improvement"),
     ("primary: {metric: mlogloss, min_relative_improvement: 0.1}\nfloor: {}\n", "floor"),
     ("primary: {metric: mlogloss, min_relative_improvement: 0.1}\nfloors: {accuracy: {least: 1}}\n",
      "floors.accuracy")],
)  # fmt: skip
def test_bad_rules_name_the_key(tmp_path, text, key):
    (tmp_path / "gate.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"gate.yaml: {key} "):
        load_rules(tmp_path / "gate.yaml")


def test_shipped_rules_load():
    rules = load_rules()
    assert (rules.primary, rules.min_relative_improvement, rules.secondary) == ("mlogloss", 0.005, {"accuracy": 0.01})


# --- real models in the registry ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry_env(local_stack, spark):
    publish_dataset()
    with isolated_names("gate-tests"):
        mlflow.set_tracking_uri(settings.tracking_uri())
        mlflow.set_experiment(settings.EXPERIMENT.get())
        yield MlflowClient()


def trial_run(rounds: int, eta: float, seed: int = 0) -> str:
    """A run shaped like a search's trial: a booster trained on the train split, lineage tags, model on S3."""
    from ml_platform.dataset import load_splits

    splits = load_splits()
    params = {"objective": "multi:softprob", "num_class": len(splits.classes), "nthread": 1, "seed": seed,
              "eta": eta, "max_depth": 3}  # fmt: skip
    booster = xgb.train(params, xgb.DMatrix(splits.x_train, label=splits.y_train), num_boost_round=rounds)
    lineage = tracking.lineage_tags(splits.dataset, splits.version, splits.content_hash, "test", seed, "none")
    with mlflow.start_run(tags=lineage) as run:
        mlflow.xgboost.log_model(booster, name="model", pip_requirements=["xgboost"])
    return run.info.run_id


def aliases(client) -> dict[str, str]:
    return dict(client.get_registered_model(settings.MODEL_NAME.get()).aliases)


def test_registry_decisions_end_to_end(registry_env, tmp_path):
    client = registry_env
    name = settings.MODEL_NAME.get()

    # No champion: floors only; pass -> @challenger, then promote -> @champion.
    # Test-split figures of these boosters on the iris splits (29 rows): 8 rounds -> log-loss 0.173, accuracy
    # 0.931; 15 rounds -> 0.109, 0.966; 2 rounds at eta 0.05 -> 0.994, 0.862.
    first = run_gate(run_id=trial_run(rounds=8, eta=0.3))
    assert first.outcome == "passed" and first.champion is None
    assert aliases(client) == {"challenger": first.challenger["version"]}
    assert promote() == (first.challenger["version"], None)
    assert aliases(client)["champion"] == first.challenger["version"]

    # Challenger equals champion (the same run gated again): nothing to decide, nothing moves.
    same = run_gate(run_id=first.challenger["run_id"])
    assert same.outcome == "unchanged" and same.challenger["version"] == first.challenger["version"]

    # Worse: exit-1 error naming the rule and both numbers, no alias moves, version tagged rejected, report kept.
    before = aliases(client)
    worse = run_gate(run_id=trial_run(rounds=2, eta=0.05))
    assert worse.outcome == "rejected" and aliases(client) == before
    with pytest.raises(GateRejected) as caught:
        worse.raise_if_rejected()
    line = caught.value.message
    assert "mlogloss must improve by >= 0.5%" in line and "\n" not in line
    assert (
        f"{worse.challenger['metrics']['mlogloss']:.4f}" in line
        and f"{worse.champion['metrics']['mlogloss']:.4f}" in line
    )
    tags = client.get_model_version(name, worse.challenger["version"]).tags
    assert tags["gate"] == "rejected" and "gate.champion.mlogloss" in tags and "gate.challenger.mlogloss" in tags
    assert tags[tracking.DATASET_HASH] and tags[tracking.GIT_COMMIT]
    saved = json.loads(Path(worse.report_path).read_text())
    assert saved["outcome"] == "rejected" and saved["dataset"]["split"] == "test"

    # Better, but inside a (deliberately wide) margin: a tie by the rules -> rejected, nothing moves.
    wide = tmp_path / "wide.yaml"
    wide.write_text(yaml.safe_dump({"primary": {"metric": "mlogloss", "min_relative_improvement": 0.99}}))
    better_run = trial_run(rounds=15, eta=0.3)
    tie = run_gate(run_id=better_run, rules=wide)
    assert tie.outcome == "rejected" and aliases(client) == before
    assert tie.challenger["metrics"]["mlogloss"] < tie.champion["metrics"]["mlogloss"]

    # Better by the shipped rules: @challenger moves, @champion stays until promote, then old -> @previous.
    better = run_gate(run_id=better_run)
    assert better.outcome == "passed"
    assert aliases(client) == {"champion": first.challenger["version"], "challenger": better.challenger["version"]}
    promote()
    assert aliases(client) == {"champion": better.challenger["version"], "challenger": better.challenger["version"],
                               "previous": first.challenger["version"]}  # fmt: skip


def test_a_champion_of_another_dataset_is_refused_in_one_line_and_the_version_tagged(registry_env, tmp_path):
    """One model name shared by two datasets (PLATFORM_MODEL_NAME set for both): the gate must not score a 4-feature
    iris champion on another dataset's rows (once a raw XGBoostError, with the version left untagged)."""
    from data_platform import cli as data_cli
    from data_platform.generate import generate
    from ml_platform.gate import GateRefused

    client = registry_env
    with isolated_names("foreign-gate"), pytest.MonkeyPatch.context() as mp:
        name = settings.MODEL_NAME.get()
        iris = run_gate(run_id=trial_run(rounds=8, eta=0.3), promote_on_pass=True)
        assert iris.promoted
        mp.setenv("PLATFORM_DATASET", "other")
        mp.setenv("PLATFORM_CONTRACTS_DIR", str(tmp_path / "contracts"))
        mp.setenv("PLATFORM_RAW_PATH", str(tmp_path / "raw" / "other.csv"))
        generate(settings.raw_path(), tmp_path / "contracts", "other", rows=300, features=6, classes=2,
                 defect_rate=0.0, seed=3)  # fmt: skip
        data_cli.etl()
        before = aliases(client)
        with pytest.raises(GateRefused) as caught:
            run_gate(run_id=trial_run(rounds=8, eta=0.3))
        line = caught.value.message
        assert "\n" not in line and "was trained on dataset 'iris', the challenger on 'other'" in line
        assert line.startswith(f"gate refused {name} v") and "PLATFORM_MODEL_NAME" in caught.value.hint
        refused = re.search(r" v(\d+): ", line).group(1)
        assert client.get_model_version(name, refused).tags["gate"] == "refused"
        assert aliases(client) == before == {"champion": iris.challenger["version"],
                                             "challenger": iris.challenger["version"]}  # fmt: skip


def test_names_follow_the_dataset_unless_set(monkeypatch):
    monkeypatch.delenv("PLATFORM_MODEL_NAME", raising=False)
    monkeypatch.delenv("PLATFORM_EXPERIMENT", raising=False)
    monkeypatch.setenv("PLATFORM_DATASET", "wine")
    assert (settings.MODEL_NAME.get(), settings.EXPERIMENT.get()) == ("wine-xgboost", "wine-xgboost")
    monkeypatch.setenv("PLATFORM_MODEL_NAME", "shared")
    assert (settings.MODEL_NAME.get(), settings.EXPERIMENT.get()) == ("shared", "wine-xgboost")


def test_gate_cli_fails_in_one_line_and_moves_nothing(registry_env):
    import subprocess
    import sys

    client = registry_env
    run_id = trial_run(rounds=1, eta=0.01)
    before = aliases(client)
    result = subprocess.run([sys.executable, "-m", "platform_cli", "gate", "--run-id", run_id],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "✘ gate rejected" in out and "mlogloss must improve" in out and "Traceback" not in out
    assert aliases(client) == before


def test_exported_bundle_is_one_model_file_plus_metadata_and_loads_in_the_predictor(registry_env, tmp_path):
    import boto3  # noqa: F401  (storage client below)

    import inference_service.runtime.kserve_seam  # noqa: F401
    from data_platform.lake import read_manifest
    from inference_service.runtime.predictor import XGBoostPredictor
    from ml_platform.export import export_model
    from platform_core import storage
    from platform_core.bundle import BUNDLE_FILE, read_bundle

    name = settings.MODEL_NAME.get()
    exported = export_model(name, "champion")
    keys = storage.list_keys(exported.storage_uri + "/")
    assert sorted(k.split(f"v{exported.version}/", 1)[1] for k in keys) == [BUNDLE_FILE, "model.ubj"]
    bucket, _ = storage.split_uri(exported.storage_uri)
    for key in keys:
        target = tmp_path / key.split(f"v{exported.version}/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        storage.client().download_file(bucket, key, str(target))
    bundle = read_bundle(tmp_path)
    manifest = read_manifest(settings.lake_dir(), settings.DATASET.get(), bundle["dataset_version"])
    assert bundle["model_name"] == name and bundle["registry_version"] == exported.version
    assert bundle["feature_names"] == manifest["features"] and bundle["class_labels"] == manifest["classes"]
    assert bundle["dataset_hash"] == manifest["content_hash"] and bundle["created_at"].endswith("Z")
    model = XGBoostPredictor(name, tmp_path, version=exported.version)
    assert model.load()  # exactly one top-level model file: the loader accepts the bundle
