"""The demo runs once per session: test_demo checks what it left behind, test_demo_serving puts its served
model under fuzzing, load and the serving notebook, and stops it last."""

import mlflow
import pytest
from mlflow import MlflowClient

from orchestration import demo as demo_flow
from platform_core import settings


@pytest.fixture(scope="session")
def demo(local_stack, spark):
    demo_flow.run()
    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()
