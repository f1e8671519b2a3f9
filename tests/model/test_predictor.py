"""The served model object itself (no server): load rules, v2 answers, 400-class errors."""

import numpy as np
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

import inference_service.kserve_guard  # noqa: F401  (hides argv from kserve's import-time parser)
from inference_service.predictor import XGBoostPredictor
from ml_platform.tune import evaluate


def _request(data, shape, datatype="FP32"):
    tensor = InferInput("input-0", shape, datatype)
    tensor.set_data_from_numpy(np.asarray(data, dtype=np.float32 if datatype == "FP32" else np.float64))
    return InferRequest(model_name="iris", infer_inputs=[tensor])


@pytest.fixture
def predictor(tmp_path, iris_booster):
    iris_booster.save_model(str(tmp_path / "model.ubj"))
    model = XGBoostPredictor("iris", tmp_path, version="7")
    model.load()
    return model


def test_predicts_probabilities_per_class(predictor):
    response = predictor.predict(_request([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]], [2, 4]))
    output = response.outputs[0]
    proba = output.as_numpy()
    assert output.name == "output-0" and proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert proba.argmax(axis=1).tolist() == [0, 2]
    assert response.model_version == "7"


def test_fp64_input_is_accepted(predictor):
    response = predictor.predict(_request([[6.1, 2.8, 4.7, 1.2]], [1, 4], "FP64"))
    assert response.outputs[0].as_numpy().argmax() == 1


@pytest.mark.parametrize(
    ("data", "shape", "datatype", "message"),
    [
        ([[1.0, 2.0, 3.0]], [1, 3], "FP32", "shape"),
        ([1.0, 2.0, 3.0, 4.0], [4], "FP32", "shape"),
    ],
)
def test_bad_requests_raise_invalid_input(predictor, data, shape, datatype, message):
    with pytest.raises(InvalidInput, match=message):
        predictor.predict(_request(data, shape, datatype))


def test_integer_tensor_is_rejected(predictor):
    tensor = InferInput("input-0", [1, 4], "INT64")
    tensor.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.int64))
    with pytest.raises(InvalidInput, match="FP32 or FP64"):
        predictor.predict(InferRequest(model_name="iris", infer_inputs=[tensor]))


def test_directory_must_hold_exactly_one_model_file(tmp_path, iris_booster):
    with pytest.raises(RuntimeError, match="found none"):
        XGBoostPredictor("iris", tmp_path).load()
    iris_booster.save_model(str(tmp_path / "model.ubj"))
    iris_booster.save_model(str(tmp_path / "model.json"))
    with pytest.raises(RuntimeError, match="exactly one"):
        XGBoostPredictor("iris", tmp_path).load()


def test_evaluate_reports_accuracy_and_logloss(iris_booster):
    from sklearn.datasets import load_iris

    iris = load_iris()
    metrics = evaluate(iris_booster, iris.data.astype(np.float32), iris.target)
    assert metrics["accuracy"] > 0.9
    assert 0 < metrics["mlogloss"] < 0.5
