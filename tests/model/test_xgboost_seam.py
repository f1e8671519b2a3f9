"""inference_service/runtime/xgboost_seam.py calls libxgboost's dense in-place predict directly. These tests fail
naming the xgboost internal it needs when an upgrade removes it, and hold its answers bit-equal to
`Booster.inplace_predict` (the call it replaces) for every input a request can bring."""

from __future__ import annotations

import threading
from importlib.metadata import version

import numpy as np
import pytest
import xgboost as xgb

from inference_service.runtime.xgboost_seam import DensePredict, library
from tests.model.ml_support import hard_rows, objective_boosters


def test_xgboost_still_has_what_the_seam_calls(iris_booster):
    lib = library()
    for name in ("XGBoosterPredictFromDense", "XGBGetLastError"):
        assert hasattr(lib, name), f"xgboost {version('xgboost')}: libxgboost has no {name}; update xgboost_seam.py"
    assert getattr(iris_booster, "handle", None), (
        f"xgboost {version('xgboost')}: Booster.handle is gone; update xgboost_seam.py"
    )


OBJECTIVES = ("binary:logistic", "multi:softprob")


@pytest.fixture(scope="module")
def boosters():
    """Each objective's booster and the data it was trained on (trained once per module, not at collection)."""
    return objective_boosters()


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_answers_are_bit_equal_to_inplace_predict(boosters, objective):
    booster, data = boosters[objective]
    predict = DensePredict(booster)
    cases = {
        "one row": data[:1].astype(np.float32),
        "a batch": data.astype(np.float32),
        "float64": data.astype(np.float64),
        "float16": data[:20].astype(np.float16),
        "fortran order": np.asfortranarray(data.astype(np.float32)),
        "a strided slice": data.astype(np.float32)[::3],
        "thresholds and missing values": hard_rows(booster, data),
        "no rows": data[:0].astype(np.float32),
    }
    for case, features in cases.items():
        ours, theirs = predict(features), booster.inplace_predict(features)
        assert ours.dtype == np.float32 and ours.flags.c_contiguous and ours.flags.writeable, case
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs, equal_nan=True), case


def test_each_thread_gets_its_own_answer(boosters):
    # libxgboost keeps the answer in a per-thread buffer; the seam copies it out before anything else runs.
    booster, data = boosters["multi:softprob"]
    predict, rows = DensePredict(booster), data.astype(np.float32)
    expected = [booster.inplace_predict(rows[i : i + 1]) for i in range(len(rows))]
    wrong = []

    def work(offset: int) -> None:
        for n in range(400):
            i = (n + offset) % len(rows)
            if not np.array_equal(predict(rows[i : i + 1]), expected[i]):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k * 37,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_wrong_feature_count_raises_xgboosts_own_error(boosters):
    booster, data = boosters["multi:softprob"]
    with pytest.raises(xgb.core.XGBoostError, match="Number of columns"):
        DensePredict(booster)(np.zeros((1, data.shape[1] + 1), dtype=np.float32))
