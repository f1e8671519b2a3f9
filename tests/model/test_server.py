"""Server-side rules that need no running server: readiness follows the loaded model."""

import asyncio

from kserve.model_repository import ModelRepository

import inference_service.runtime.kserve_seam  # noqa: F401
from inference_service.runtime.predictor import XGBoostPredictor
from inference_service.runtime.server import LoadedDataPlane


def test_server_readiness_follows_the_model_being_loaded(iris_bundle):
    model = XGBoostPredictor("iris", iris_bundle, "1")
    repository = ModelRepository()
    dataplane = LoadedDataPlane(repository, ["iris"])
    assert not asyncio.run(dataplane.ready())  # registered nothing yet
    model.load()
    repository.update(model)
    assert asyncio.run(dataplane.ready())
    repository.unload("iris")  # what the repository API's unload does, when a setting enables it
    assert not asyncio.run(dataplane.ready())


def test_binary_request_checks_and_the_chunked_body_limit():
    import json

    from inference_service.runtime.rest import binary_problem, read_body

    header = json.dumps({"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}]}).encode()  # fmt: skip
    assert binary_problem(str(len(header)).encode(), header + bytes(16)) is None
    assert "carries 4" in binary_problem(str(len(header)).encode(), header + bytes(4))
    assert "must be an integer" in binary_problem(b"x", header)
    assert "does not fit" in binary_problem(b"99999", header)
    fp64 = header.replace(b"FP32", b"FP64")
    assert "(32 bytes)" in binary_problem(str(len(fp64)).encode(), fp64 + bytes(16))

    def chunks(*parts):
        messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

        async def receive():
            return messages.pop(0)

        return receive

    assert asyncio.run(read_body(chunks(b"ab", b"cd"), limit=4)) == b"abcd"
    assert asyncio.run(read_body(chunks(b"ab", b"cde"), limit=4)) is None
