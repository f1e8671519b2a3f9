"""The REST fast path gives the answers KServe's own encoder gives, and hands every other request to KServe."""

import json

import numpy as np
import orjson
import pytest
from kserve import InferRequest

import inference_service.runtime.kserve_seam  # noqa: F401  (hides argv from kserve's import-time parser)
from inference_service.runtime import fast_rest
from inference_service.runtime.predictor import XGBoostPredictor

ROWS = np.asarray([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3], [6.0, 2.9, 4.5, 1.5]], dtype=np.float32)


@pytest.fixture
def predictor(iris_bundle):
    model = XGBoostPredictor("iris", iris_bundle, version="7")
    model.load()
    return model


def _json_body(parameters=None) -> bytes:
    doc = {"id": "r1", "inputs": [{"name": "features", "shape": list(ROWS.shape), "datatype": "FP32",
                                   "data": ROWS.ravel().tolist()}]}  # fmt: skip
    if parameters:
        doc["parameters"] = parameters
    return json.dumps(doc).encode()


def _binary_body(parameters=None) -> tuple[bytes, bytes]:
    raw = ROWS.tobytes()
    doc = {"id": "r1", "inputs": [{"name": "features", "shape": list(ROWS.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
           "parameters": {"binary_data_output": True, **(parameters or {})}}  # fmt: skip
    header = json.dumps(doc).encode()
    return header + raw, str(len(header)).encode()


def _binary_outputs(body: bytes, header_length: int) -> tuple[dict, dict]:
    """Parse a binary-extension answer as a client does: JSON header, then each output's bytes in order."""
    header = orjson.loads(body[:header_length])
    offset, tensors = header_length, {}
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        chunk, offset = body[offset : offset + size], offset + size
        if output["datatype"] == "FP32":
            tensors[output["name"]] = np.frombuffer(chunk, "<f4").reshape(output["shape"])
        elif output["datatype"] == "INT64":
            tensors[output["name"]] = np.frombuffer(chunk, "<i8")
        else:
            items, i = [], 0
            while i < len(chunk):
                n = int.from_bytes(chunk[i : i + 4], "little")
                items.append(chunk[i + 4 : i + 4 + n].decode())
                i += 4 + n
            tensors[output["name"]] = items
    assert offset == len(body)
    return header, tensors


@pytest.mark.parametrize("parameters", [None, {"label_as_index": True}])
def test_json_answer_equals_kserves_encoding_of_the_same_request(predictor, parameters):
    fast, header_length = predictor.rest_answer(fast_rest.decode(_json_body(parameters), None, "iris"))
    assert header_length is None
    stock, _ = predictor.answer(InferRequest.from_bytes(_json_body(parameters), len(_json_body(parameters)),
                                                        "iris")).to_rest()  # fmt: skip
    fast = orjson.loads(fast)
    assert (fast["id"], fast["model_version"], fast["parameters"]) == ("r1", "7", stock["parameters"])
    for mine, theirs in zip(fast["outputs"], stock["outputs"], strict=True):
        assert (mine["name"], mine["shape"], mine["datatype"]) == (theirs["name"], theirs["shape"], theirs["datatype"])
        if mine["datatype"] == "FP32":
            np.testing.assert_array_equal(np.float32(mine["data"]), np.float32(theirs["data"]))
        else:
            assert mine["data"] == theirs["data"]


@pytest.mark.parametrize("parameters", [None, {"label_as_index": True}])
def test_binary_answer_decodes_to_the_same_tensors_as_kserves(predictor, parameters):
    body, length = _binary_body(parameters)
    fast, header_length = predictor.rest_answer(fast_rest.decode(body, length, "iris"))
    stock, stock_length = predictor.answer(InferRequest.from_bytes(body, int(length), "iris")).to_rest()
    (mine_header, mine), (_, theirs) = _binary_outputs(fast, header_length), _binary_outputs(stock, stock_length)
    assert mine_header["id"] == "r1" and mine.keys() == theirs.keys() == {"probabilities", "label"}
    np.testing.assert_array_equal(mine["probabilities"], theirs["probabilities"])
    assert list(mine["label"]) == list(theirs["label"])
    expected = predictor._booster.inplace_predict(ROWS).argmax(axis=1)
    labels = list(expected) if parameters else [predictor.classes[i] for i in expected]
    assert list(mine["label"]) == labels


def test_binary_inputs_keep_their_bytes_instead_of_a_python_list(predictor):
    body, length = _binary_body()
    request = fast_rest.decode(body, length, "iris")
    assert request.inputs[0]._raw_data == ROWS.tobytes() and request.inputs[0].data is None
    np.testing.assert_array_equal(request.inputs[0].as_numpy(), ROWS)


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": [',  # malformed: KServe's route answers the 400
        b"[1, 2]",
        b'{"inputs": {"name": "features"}}',
        b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32"}]}',  # no data
        b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],'
        b' "outputs": [{"name": "label"}]}',  # per-output options: KServe's encoder
        b'{"id": 5, "inputs": []}',
        b'{"inputs": [{"name": 1, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
    ],
)
def test_requests_the_fast_path_does_not_take_go_to_kserves_route(body):
    with pytest.raises(fast_rest.NotFast):
        fast_rest.decode(body, None, "iris")


def test_bad_values_on_the_fast_path_are_the_predictors_400s(predictor):
    from kserve.errors import InvalidInput

    body = b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "x", 4]}]}'
    with pytest.raises(InvalidInput, match="must hold numbers .* got 'x'"):
        predictor.rest_answer(fast_rest.decode(body, None, "iris"))
    # a number in a string is still a string: gRPC's typed contents could never carry it
    body = b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": ["5.1", 3.5, 1.4, 0.2]}]}'
    with pytest.raises(InvalidInput, match="got '5.1'"):
        predictor.rest_answer(fast_rest.decode(body, None, "iris"))


def test_large_json_is_parsed_in_the_helper_process_and_answered_in_slices_the_same(predictor, monkeypatch):
    from kserve.errors import InvalidInput

    from inference_service.runtime import json_helper
    from inference_service.runtime import predictor as predictor_module

    small = orjson.loads(predictor.rest_answer(fast_rest.decode(_json_body(), None, "iris"))[0])
    as_index = {"label_as_index": True}
    small_index = orjson.loads(predictor.rest_answer(fast_rest.decode(_json_body(as_index), None, "iris"))[0])
    monkeypatch.setattr(fast_rest, "LARGE_JSON", 0)  # every body takes the helper
    binary = _binary_outputs(*predictor.rest_answer(fast_rest.decode(*_binary_body(), "iris")))[1]
    monkeypatch.setattr(predictor_module, "JSON_SLICE", 2)  # 9 values -> 5 slices, 3 labels -> 2
    request = fast_rest.decode(_json_body(), None, "iris")
    assert isinstance(request.inputs[0].data, np.ndarray)  # converted in the helper, with the tensor's datatype
    assert json_helper._helper is not None and json_helper._helper.poll() is None
    sliced = orjson.loads(predictor.rest_answer(request)[0])
    assert sliced["outputs"] == small["outputs"] and sliced["id"] == "r1"
    sliced_index = orjson.loads(predictor.rest_answer(fast_rest.decode(_json_body(as_index), None, "iris"))[0])
    assert sliced_index["outputs"] == small_index["outputs"]
    assert sliced_index["outputs"][1]["datatype"] == "INT64" and sliced["outputs"][1]["datatype"] == "BYTES"
    body, length = _binary_body()
    labels = _binary_outputs(*predictor.rest_answer(fast_rest.decode(body, length, "iris")))[1]["label"]
    assert labels == binary["label"]
    with pytest.raises(fast_rest.NotFast):  # malformed: KServe's route gives the 400
        fast_rest.decode(b'{"inputs": [', None, "iris")
    bad = b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "x", 4]}]}'
    with pytest.raises(InvalidInput, match="got .x."):  # left as a list: the predictor's own check
        predictor.rest_answer(fast_rest.decode(bad, None, "iris"))
