"""Server-side rules that need no running server: readiness follows the loaded model."""

import asyncio

from kserve.model_repository import ModelRepository

import inference_service.kserve_guard  # noqa: F401
from inference_service.predictor import XGBoostPredictor
from inference_service.server import _LoadedDataPlane


def test_server_readiness_follows_the_model_being_loaded(iris_bundle):
    model = XGBoostPredictor("iris", iris_bundle, "1")
    repository = ModelRepository()
    dataplane = _LoadedDataPlane(repository, ["iris"])
    assert not asyncio.run(dataplane.ready())  # registered nothing yet
    model.load()
    repository.update(model)
    assert asyncio.run(dataplane.ready())
    repository.unload("iris")  # what the repository API's unload does, when a setting enables it
    assert not asyncio.run(dataplane.ready())
