"""Every image the bundle references has a Dockerfile, and each Dockerfile builds and runs: replayed here
(tests/cluster/dockerfile_replay.py) from its own COPY set and `uv` steps, then its entrypoint is run."""

from __future__ import annotations

import subprocess
import time
import tomllib

import httpx
import pytest

from platform_core.processes import free_port
from tests.cluster.dockerfile_replay import REPO, copy_sources, replay

SERVING = REPO / "docker" / "serving.Dockerfile"
PLATFORM = REPO / "docker" / "Dockerfile"
HEAVY = ("pyspark", "ray", "mlflow", "kfp", "sklearn", "optuna")
BODY = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _importable(image, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run(["python", "-c", probe], cwd=image.root, env=image.env).returncode == 0


@pytest.fixture(scope="module")
def serving_image(tmp_path_factory):
    return replay(SERVING, tmp_path_factory.mktemp("serving-image"))


def test_the_serving_image_has_the_runtime_without_spark_ray_or_mlflow(serving_image):
    assert [m for m in HEAVY if _importable(serving_image, m)] == []
    assert _importable(serving_image, "kserve") and _importable(serving_image, "xgboost")


def test_the_serving_image_serves_a_bundle_to_ready_and_answers_a_v2_request(serving_image, iris_bundle):
    port = free_port("127.0.0.1")
    server = serving_image.run("--model-name", "iris", "--model-dir", str(iris_bundle), "--host", "127.0.0.1",
                               "--http-port", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the serving image's server did not get ready in 90 s"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", json=BODY, timeout=10)
        assert answer.status_code == 200, answer.text
        label = next(o for o in answer.json()["outputs"] if o["name"] == "label")
        assert label["data"] == ["setosa"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_file_missing_from_the_copy_set_fails_the_replay(tmp_path):
    # The defect the platform image once had: pyproject.toml names README.md, the COPY set left it out.
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        SERVING.read_text().replace("COPY pyproject.toml uv.lock README.md ./", "COPY pyproject.toml uv.lock ./")
    )
    assert broken.read_text() != SERVING.read_text()
    with pytest.raises(AssertionError, match="failed in the replay"):
        replay(broken, tmp_path / "image")


def test_every_dockerfile_copies_what_the_project_build_needs_and_installs_from_the_lock():
    # The platform image is too large to replay on every run; its COPY set is checked against what hatchling
    # builds (pyproject's packages and readme), which is where a missing file broke it before.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "uv.lock", project["project"]["readme"],
              *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}  # fmt: skip
    for dockerfile in (SERVING, PLATFORM):
        copied = copy_sources(dockerfile)
        assert needed <= set(copied), f"{dockerfile.name} does not copy {sorted(needed - set(copied))}"
        assert all((REPO / source).exists() for source in copied), f"{dockerfile.name} copies a missing path"
        assert "uv sync --frozen" in dockerfile.read_text(), f"{dockerfile.name} must install from uv.lock"
