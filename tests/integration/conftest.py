"""The demo runs once per session: test_demo checks what it left behind, test_demo_serving puts its served
model under fuzzing, load and the serving notebook, and stops it last."""

import contextlib
import io
import os
import sys

import mlflow
import pytest
from mlflow import MlflowClient

from orchestration import demo as demo_flow
from platform_core import settings


@pytest.fixture(scope="session")
def demo(local_stack, spark):
    """The demo, with everything it prints (Python's streams and, for the JVM's and Ray's C++ chatter, file
    descriptors 1 and 2) in <state>/demo-console.log, for the test that reads it as a user would."""
    log = settings.state_dir() / "demo-console.log"
    with log.open("w+b") as out:
        text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                demo_flow.run(keep_runtimes=True)  # the later tests use its Spark session and Ray runtime
        finally:
            text.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            text.detach()
    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()
