"""Every image the bundle references has a Dockerfile, and each Dockerfile builds and runs: replayed here
(tests/cluster/dockerfile_replay.py) from its own COPY set and `uv` steps, then its entrypoint is run."""

from __future__ import annotations

import ast
import json
import subprocess
import tomllib

import httpx
import pytest
import yaml

from orchestration import pipeline
from platform_core import settings
from platform_core.processes import free_port
from tests.cluster.dockerfile_replay import REPO, copy_sources, replay
from tests.conftest import wait_until_serving

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
        wait_until_serving(server, port, "the serving image's server", output=lambda: server.stderr.read().decode())
        answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", json=BODY, timeout=10)
        assert answer.status_code == 200, answer.text
        label = next(o for o in answer.json()["outputs"] if o["name"] == "label")
        assert label["data"] == ["setosa"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def platform_image(tmp_path_factory):
    return replay(PLATFORM, tmp_path_factory.mktemp("platform-image"))


def test_the_platform_image_runs_the_cli(platform_image):
    res = platform_image.run("--help", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = res.communicate(timeout=120)
    assert res.returncode == 0, err[-2000:]
    for command in ("etl", "tune", "gate", "export", "canary", "pipeline-run"):
        assert f" {command} " in out, f"`platform --help` of the image lists no {command}"


def _ir():
    spec, _platform = yaml.safe_load_all((REPO / pipeline.COMPILED).read_text())
    return spec


def test_every_compiled_component_finds_its_imports_in_the_platform_image(platform_image):
    """What each task's container runs (the compiled pipeline's embedded source) imports only what the image has:
    a package left out of the COPY set or the lock fails here, not in the first KFP run."""
    modules = set()
    for name, executor in _ir()["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == settings.IMAGE.get(), name
        for node in ast.walk(ast.parse(container["command"][3])):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    assert {"data_platform.etl", "ml_platform.tune", "ml_platform.gate", "orchestration.flows"} <= modules
    missing = [m for m in sorted(modules) if not _importable(platform_image, m)]
    assert missing == [], f"the platform image lacks {missing}"


def test_a_compiled_component_runs_in_the_platform_image_as_kfp_starts_it(platform_image, tmp_path):
    """The rejection branch's task, started with the compiled command and arguments and an executor input the
    way KFP's launcher passes them: it reads its input artifact's metadata and writes its output parameter."""
    container = _ir()["deploymentSpec"]["executors"]["exec-record-rejection"]["container"]
    metadata = {"version": "7", "decision": "rejected", "reason": "beats_champion: 0.41 >= 0.40"}
    executor_input = {
        "inputs": {"artifacts": {"gated": {"artifacts": [{
            "name": "gated", "uri": str(tmp_path / "gated"), "metadata": metadata,
            "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}]}}},
        "outputs": {"parameters": {"Output": {"outputFile": str(tmp_path / "Output")}},
                    "outputFile": str(tmp_path / "executor_output.json")},
    }  # fmt: skip
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    res = subprocess.run([*container["command"], *args], cwd=platform_image.root, env=platform_image.env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    reason = "v7 not rolled out: rejected (beats_champion: 0.41 >= 0.40)"
    assert reason in res.stdout
    written = json.loads((tmp_path / "executor_output.json").read_text())  # what KFP's launcher reads back
    assert written["parameterValues"] == {"Output": reason}


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
    # Both images' COPY sets against what hatchling builds (pyproject's packages and readme): where a missing file
    # broke the platform image before. The replays above then run what each image runs.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "uv.lock", project["project"]["readme"],
              *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}  # fmt: skip
    for dockerfile in (SERVING, PLATFORM):
        copied = copy_sources(dockerfile)
        assert needed <= set(copied), f"{dockerfile.name} does not copy {sorted(needed - set(copied))}"
        assert all((REPO / source).exists() for source in copied), f"{dockerfile.name} copies a missing path"
        assert "uv sync --frozen" in dockerfile.read_text(), f"{dockerfile.name} must install from uv.lock"
