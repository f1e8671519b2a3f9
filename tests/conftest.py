"""Shared fixtures.

The whole session runs against its own state dir and its own free ports, so tests never touch a user's
running stack. Expensive things exist once per session: the local stack (SeaweedFS + MLflow), the Spark
session, the Ray runtime (started lazily by the tune stage and reused).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def _stop_on_sigterm(signum, frame):
    # pytest runs no fixture teardown when it is killed by SIGTERM (a CI timeout, say): turned into an
    # interrupt, the session fixtures still stop the services they started.
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _stop_on_sigterm)

CLUSTER_TESTS = Path(__file__).parent / "cluster"


def pytest_itemcollected(item):
    """The lanes (`task test:fast|cluster|integration|e2e`) follow from what a test needs, not from memory: the
    session's local stack -> integration, the demo -> e2e, tests/cluster/ (offline bundle checks) -> cluster;
    everything else is the fast lane (code, data, model). `task test` runs the e2e lane and the rest side by side
    (tests/lanes.py)."""
    needs = set(getattr(item, "fixturenames", ()))
    if "demo" in needs:
        item.add_marker(pytest.mark.e2e)
    if needs & {"local_stack", "demo"}:
        item.add_marker(pytest.mark.integration)
    if CLUSTER_TESTS in item.path.parents:
        item.add_marker(pytest.mark.cluster)


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range: any client socket may take a port from there on."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Service ports come from 20000-30000: below it Ray's worker ports (10002-19999), above it the ephemeral range.
# A SeaweedFS block (each port + seaweed.GRPC_OFFSET for gRPC) takes its base from the bottom of that span, low
# enough that its gRPC ports stay below the ephemeral range too (a gRPC port at 35722 was once taken by a client
# socket of the other lane between its pick and SeaweedFS's start); single ports take the rest of the span.
_PORTS_LOW, _PORTS_HIGH = 20000, 30000


def port_range(offset: int) -> tuple[int, int]:
    """The share of this session, for blocks with `offset` or for single ports, split between the sessions
    `task test` runs side by side (tests/lanes.py sets PLATFORM_TEST_SLOT=i/n): a port one session picked (and
    binds only when its stack starts, minutes later) is never picked by the other meanwhile."""
    from platform_core.seaweed import GRPC_OFFSET

    assert offset in (0, GRPC_OFFSET), f"no share for blocks with offset {offset}"
    slot, count = map(int, os.environ.get("PLATFORM_TEST_SLOT", "0/1").split("/"))
    split = max(_PORTS_LOW + 1000, min(25000, ephemeral_low() - GRPC_OFFSET))
    low, high = (_PORTS_LOW, split) if offset else (split, _PORTS_HIGH)
    span = (high - low) // count
    low += slot * span
    return low, low + span - 16  # room for a block's size


def free_port_block(size: int, offset: int) -> int:
    """A base port where base..base+size-1 and the same ports + offset are all free (SeaweedFS needs both)."""
    import random

    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(*port_range(offset))
        ports = [base + i for i in range(size)] + [base + offset + i for i in range(size)]
        if all(is_free(p) for p in ports):
            return base
    raise RuntimeError("no free port block")


def quiet_port() -> int:
    """A free port in this worker's share of single ports (port_range(0), within 20000-30000): outside the
    kernel's ephemeral range and Ray's worker ports (10002-19999), so no client socket or Ray worker takes a
    service's port while a test has that service stopped."""
    while (port := free_port_block(1, offset=0)) in _TAKEN:
        pass
    _TAKEN.add(port)
    return port


_TAKEN: set[int] = set()


def is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="session", autouse=True)
def isolated_settings(tmp_path_factory) -> Path:
    """Point every setting at a private state dir and free ports for the whole session."""
    state = tmp_path_factory.mktemp("state")
    from platform_core.seaweed import COMPONENTS, GRPC_OFFSET

    base = free_port_block(1 + len(COMPONENTS), offset=GRPC_OFFSET)  # S3, then its components' ports
    env = {
        "PLATFORM_STATE_DIR": str(state),
        "PLATFORM_S3_PORT": str(base),
        "PLATFORM_MLFLOW_PORT": str(quiet_port()),
        "PLATFORM_SERVE_HTTP_PORT": str(quiet_port()),
        "PLATFORM_SERVE_GRPC_PORT": str(quiet_port()),
        "PLATFORM_SPARK_SERVER_PORT": str(quiet_port()),
        "PLATFORM_TUNE_SAMPLES": "2",
        "PLATFORM_TUNE_MAX_ROUNDS": "15",
        # With 2 trials of 15 rounds first, this seed's search (60 rounds) passes the gate: the demo's canary runs.
        "PLATFORM_DEMO_SECOND_SEED": "43",
        # Loopback requests take milliseconds: a short drain and analysis step still see hundreds of them.
        "PLATFORM_CANARY_DRAIN_S": "0.5",
        "PLATFORM_CANARY_INTERVAL_S": "1",
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PLATFORM_PROFILE", "PLATFORM_TRACKING_URI",
                "PLATFORM_S3_ENDPOINT", "MLFLOW_TRACKING_URI"):  # fmt: skip
        os.environ.pop(key, None)
    os.environ.update(env)
    return state


@pytest.fixture(scope="session")
def local_stack(isolated_settings):
    """SeaweedFS + MLflow started once for the session, stopped by PID at the end."""
    from platform_core import settings, stack

    stack.up()
    settings.apply_client_env()
    yield stack
    stack.down()
    try:
        import ray

        ray.shutdown()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


@pytest.fixture(scope="session")
def spark(isolated_settings):
    from data_platform.spark import get_session

    session = get_session("platform-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def iris_booster():
    """A small real multi:softprob booster trained on sklearn's iris."""
    import xgboost as xgb
    from sklearn.datasets import load_iris

    iris = load_iris()
    params = {"objective": "multi:softprob", "num_class": 3, "nthread": 1, "seed": 0, "max_depth": 2}
    return xgb.train(params, xgb.DMatrix(iris.data, label=iris.target), num_boost_round=10)


@pytest.fixture
def iris_bundle(tmp_path, iris_booster) -> Path:
    """A serving bundle dir as `task export` lays it out: the booster plus metadata/bundle.json."""
    import json

    from platform_core.bundle import BUNDLE_FILE

    iris_booster.save_model(str(tmp_path / "model.ubj"))
    (tmp_path / BUNDLE_FILE).parent.mkdir()
    (tmp_path / BUNDLE_FILE).write_text(json.dumps({
        "model_name": "iris", "registry_version": "7", "model_file": "model.ubj",
        "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "class_labels": ["setosa", "versicolor", "virginica"],
    }))  # fmt: skip
    return tmp_path


def wait_until_serving(process, port: int, what: str, output=lambda: "", timeout: float = 90) -> None:
    """Block until a v2 server process answers ready on 127.0.0.1:`port`; fail with its last output if it exits."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, output()[-3000:]
        assert time.monotonic() < deadline, f"{what} did not get ready in {timeout:g} s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
