"""The served model object itself (no server): load rules, metadata from the bundle, v2 answers, 400-class errors."""

import numpy as np
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

import inference_service.runtime.kserve_seam  # noqa: F401  (hides argv from kserve's import-time parser)
from inference_service.runtime.predictor import XGBoostPredictor
from ml_platform.trial import evaluate
from platform_core.bundle import BUNDLE_FILE
from platform_core.errors import DataError

ROWS = [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]


def _request(data, shape, datatype="FP32", name="features", parameters=None):
    tensor = InferInput(name, shape, datatype)
    tensor.set_data_from_numpy(np.asarray(data, dtype=np.float32 if datatype == "FP32" else np.float64))
    return InferRequest(model_name="iris", infer_inputs=[tensor], request_id="req-1", parameters=parameters)


@pytest.fixture
def predictor(iris_bundle):
    model = XGBoostPredictor("iris", iris_bundle, version="7")
    model.load()
    return model


def test_metadata_describes_the_real_tensors_from_the_bundle(predictor):
    (features,) = predictor.get_input_types()
    assert (features["name"], features["datatype"], features["shape"]) == ("features", "FP32", [-1, 4])
    proba, label = predictor.get_output_types()
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("probabilities", "FP32", [-1, 3])
    assert (label["name"], label["datatype"], label["shape"]) == ("label", "BYTES", [-1])


def test_answers_named_probabilities_and_class_labels_with_both_versions(predictor):
    response = predictor.answer(_request(ROWS, [2, 4]))
    proba, label = response.outputs
    assert proba.name == "probabilities" and proba.as_numpy().shape == (2, 3)
    np.testing.assert_allclose(proba.as_numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert label.name == "label" and label.datatype == "BYTES"
    assert [v.decode() if isinstance(v, bytes) else v for v in label.as_numpy()] == ["setosa", "virginica"]
    assert response.id == "req-1" and response.model_version == "7"
    assert response.parameters["service_version"]
    rest = response.to_rest()[0]
    assert rest["outputs"][1]["data"] == ["setosa", "virginica"]  # JSON carries the names as strings


def test_label_as_index_parameter_gives_int64_indices(predictor):
    response = predictor.answer(_request(ROWS, [2, 4], parameters={"label_as_index": True}))
    label = response.outputs[1]
    assert label.datatype == "INT64" and label.as_numpy().tolist() == [0, 2]


def test_fp64_input_is_accepted(predictor):
    response = predictor.answer(_request([[6.1, 2.8, 4.7, 1.2]], [1, 4], "FP64"))
    assert response.outputs[0].as_numpy().argmax() == 1


@pytest.mark.parametrize(
    ("data", "shape", "kwargs", "message"),
    [
        ([[1.0, 2.0, 3.0]], [1, 3], {}, r"shape \[N, 4\]"),
        ([1.0, 2.0, 3.0, 4.0], [4], {}, r"shape \[N, 4\]"),
        ([[1.0, 2.0, 3.0, 4.0]], [1, 4], {"name": "input-0"}, "unknown input 'input-0'"),
        ([[1.0, float("nan"), 3.0, 4.0]], [1, 4], {}, "non-finite.*'sepal_width'"),
        ([[1.0, 2.0, float("inf"), 4.0]], [1, 4], {}, "non-finite.*'petal_length'"),
    ],
)
def test_bad_requests_raise_invalid_input(predictor, data, shape, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        predictor.answer(_request(data, shape, **kwargs))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1.0, None, 3.0, 4.0], "non-finite"),
        ([1.0, "x", 3.0, 4.0], "'x'"),
        (["5.1", 3.5, 1.4, 0.2], "got '5.1'"),
    ],
)
def test_json_nulls_and_strings_in_a_numeric_tensor_are_400s(predictor, data, message):
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    body = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": data}]}
    payload = InferRequest.from_inference_request(InferenceRequest.model_validate(body), "iris")
    with pytest.raises(InvalidInput, match=message):
        predictor.answer(payload)


def test_oversized_batch_is_refused_with_the_limit(iris_bundle, monkeypatch):
    monkeypatch.setenv("PLATFORM_SERVE_MAX_ROWS", "3")
    model = XGBoostPredictor("iris", iris_bundle)
    model.load()
    with pytest.raises(InvalidInput, match="4 rows is over the limit of 3 rows"):
        model.answer(_request(ROWS * 2, [4, 4]))
    assert model.version == "7"  # taken from the bundle when the server is not told


def test_non_finite_values_pass_when_the_setting_allows_them(iris_bundle, monkeypatch):
    monkeypatch.setenv("PLATFORM_SERVE_ALLOW_NON_FINITE", "true")
    model = XGBoostPredictor("iris", iris_bundle)
    model.load()
    response = model.answer(_request([[1.0, float("nan"), 3.0, 4.0]], [1, 4]))
    assert np.isfinite(response.outputs[0].as_numpy()).all()  # XGBoost reads NaN as "missing"


def test_integer_tensor_is_rejected(predictor):
    tensor = InferInput("features", [1, 4], "INT64")
    tensor.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.int64))
    with pytest.raises(InvalidInput, match="FP32 or FP64"):
        predictor.answer(InferRequest(model_name="iris", infer_inputs=[tensor]))


def test_directory_must_hold_exactly_one_model_file_and_the_bundle_metadata(iris_bundle, iris_booster):
    (iris_bundle / "model.ubj").unlink()
    with pytest.raises(RuntimeError, match="found none"):
        XGBoostPredictor("iris", iris_bundle).load()
    iris_booster.save_model(str(iris_bundle / "model.ubj"))
    iris_booster.save_model(str(iris_bundle / "model.json"))
    with pytest.raises(RuntimeError, match="exactly one"):
        XGBoostPredictor("iris", iris_bundle).load()
    (iris_bundle / "model.json").unlink()
    (iris_bundle / BUNDLE_FILE).unlink()
    with pytest.raises(DataError, match="not a serving bundle"):
        XGBoostPredictor("iris", iris_bundle).load()


def test_evaluate_reports_accuracy_and_logloss(iris_booster):
    from sklearn.datasets import load_iris

    iris = load_iris()
    metrics = evaluate(iris_booster, iris.data.astype(np.float32), iris.target)
    assert metrics["accuracy"] > 0.9
    assert 0 < metrics["mlogloss"] < 0.5


def test_large_batches_are_answered_off_the_event_loop_with_the_same_result(predictor):
    import asyncio
    import threading

    from inference_service.runtime.predictor import INLINE_ROWS

    rows = np.tile(np.asarray(ROWS, dtype=np.float32), (INLINE_ROWS, 1))  # 2 x INLINE_ROWS rows
    threads = []
    concluded = predictor._concluded  # runs where the prediction ran

    def spy(*args):
        threads.append(threading.current_thread())
        return concluded(*args)

    predictor._concluded = spy
    big = asyncio.run(predictor.predict(_request(rows, list(rows.shape))))
    small = asyncio.run(predictor.predict(_request(ROWS, [2, 4])))
    assert threads[0] is not threading.main_thread() and threads[1] is threading.main_thread()
    np.testing.assert_allclose(big.outputs[0].as_numpy()[:2], small.outputs[0].as_numpy())


def test_answers_and_rejections_are_counted_per_model_version_and_reason(predictor):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, {"model": "iris", "version": "7", **labels}) or 0.0

    before = (sample("platform_inference_rows_total"), sample("platform_inference_rejections_total", reason="shape"),
              sample("platform_inference_requests_total", outcome="ok"))  # fmt: skip
    predictor.answer(_request(ROWS, [2, 4]))
    with pytest.raises(InvalidInput):
        predictor.answer(_request([[1.0, 2.0, 3.0]], [1, 3]))
    assert sample("platform_inference_rows_total") == before[0] + 2
    assert sample("platform_inference_rejections_total", reason="shape") == before[1] + 1
    assert sample("platform_inference_requests_total", outcome="ok") == before[2] + 1
    assert sample("platform_inference_seconds_count") >= 1


def test_prediction_log_samples_answers_into_the_state_dir(iris_bundle, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PLATFORM_SERVE_PREDICTION_LOG_RATE", "1")
    model = XGBoostPredictor("iris", iris_bundle)
    model.load()
    model.answer(_request(ROWS, [2, 4]))
    with pytest.raises(InvalidInput):
        model.answer(_request([[1.0, 2.0, 3.0]], [1, 3]))  # rejected requests are not predictions
    (line,) = (tmp_path / "state" / "logs" / "predictions-iris-v7.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["id"] == "req-1" and record["rows"] == 2 and record["labels"] == ["setosa", "virginica"]
    assert record["label_counts"] == {"setosa": 1, "versicolor": 0, "virginica": 1}
    np.testing.assert_allclose(record["inputs"], ROWS, rtol=1e-6)


def test_prediction_log_is_off_by_default(iris_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    model = XGBoostPredictor("iris", iris_bundle)
    model.load()
    model.answer(_request(ROWS, [2, 4]))
    assert not (tmp_path / "state" / "logs").exists()
