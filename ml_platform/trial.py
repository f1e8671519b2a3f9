"""One trial of the search: what runs inside a Ray worker.

Kept lean on purpose: a worker imports this module (numpy, xgboost, ray.tune) and nothing else — no mlflow
(~3 s of imports per worker), no pyarrow, no settings. The trial never talks to MLflow or S3: it reports each
round's validation metrics to Tune (ASHA decides on them) and, when it finishes, one last result with the booster
as a Tune checkpoint. The driver turns those into MLflow runs off the trial's critical path (ml_platform.tracking).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ml_platform.ray_env  # noqa: F401  (before ray is imported: whichever ML module loads first sets Ray's env)

# isort: split

import numpy as np
import xgboost as xgb
from ray import tune

CHECKPOINT_FILE = "model.ubj"  # the booster in a trial's Ray checkpoint (not the serving bundle's file)
FINAL = "final"  # key of the last result of a trial that ran to its end (ASHA-stopped trials never send it)


def booster_params(config: dict[str, Any], num_class: int, seed: int) -> dict[str, Any]:
    # nthread=1: trials run side by side, one per CPU; more threads per trial only oversubscribe.
    # merror before mlogloss: xgboost early-stops on the last eval metric.
    return {
        **config,
        "objective": "multi:softprob",
        "num_class": num_class,
        "eval_metric": ["merror", "mlogloss"],
        "nthread": 1,
        "seed": seed,
    }


def evaluate(booster: xgb.Booster, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Multi-class log-loss and accuracy of a softprob booster (the gate scores with the same function)."""
    proba = booster.predict(xgb.DMatrix(x)).reshape(len(y), -1)
    eps = 1e-15
    logloss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0))))
    return {"accuracy": float(np.mean(proba.argmax(axis=1) == y)), "mlogloss": logloss}


class _ReportRounds(xgb.callback.TrainingCallback):
    """Every boosting round's validation metrics go to Tune: ASHA compares trials at its rungs on them."""

    def after_iteration(self, model, epoch, evals_log) -> bool:
        valid = evals_log["valid"]
        tune.report({"valid_mlogloss": float(valid["mlogloss"][-1]), "valid_accuracy": 1.0 - valid["merror"][-1]})
        return False


def train(config: dict[str, Any], data: dict[str, np.ndarray], num_class: int, max_rounds: int, seed: int,
          early_stopping_rounds: int) -> None:  # fmt: skip
    """The Tune trainable. `data` holds train/valid arrays only: trials never see the test split."""
    params = booster_params(config, num_class, seed)
    dtrain = xgb.DMatrix(data["x_train"], label=data["y_train"])
    dvalid = xgb.DMatrix(data["x_valid"], label=data["y_valid"])
    booster = xgb.train(
        params, dtrain, num_boost_round=max_rounds, evals=[(dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds, verbose_eval=False, callbacks=[_ReportRounds()],
    )  # fmt: skip
    booster = booster[: booster.best_iteration + 1]  # keep only the rounds that helped
    valid = evaluate(booster, data["x_valid"], data["y_valid"])
    final = {f"valid_{k}": v for k, v in valid.items()} | {"rounds": booster.num_boosted_rounds(), FINAL: 1}
    with tempfile.TemporaryDirectory() as tmp:
        booster.save_model(str(Path(tmp) / CHECKPOINT_FILE))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
