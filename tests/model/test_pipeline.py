"""The Kubeflow pipeline: compiles deterministically, the committed IR is a fresh compile, the gate is a condition
over the canary, every component is a thin call of a stage function, and the image builds only from the lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from orchestration import pipeline
from platform_core import settings

COMPILED = settings.REPO_ROOT / pipeline.COMPILED
DOCKERFILE = settings.REPO_ROOT / "docker" / "Dockerfile"


def test_compiling_twice_gives_identical_bytes_and_equals_the_committed_ir(tmp_path):
    first = pipeline.compile_pipeline(str(tmp_path / "a.yaml"))
    second = pipeline.compile_pipeline(str(tmp_path / "b.yaml"))
    text = Path(first).read_bytes()
    assert text == Path(second).read_bytes()
    assert COMPILED.read_bytes() == text, "stale: run `task pipeline:compile`"


def test_the_rollout_runs_only_when_the_gate_passed():
    ir = next(yaml.safe_load_all(COMPILED.read_text()))  # then the kubernetes platform spec
    tasks = ir["root"]["dag"]["tasks"]
    assert [t for t in ("etl", "tune", "gate") if t in tasks] == ["etl", "tune", "gate"]
    (group,) = [t for name, t in tasks.items() if name.startswith("condition-branches")]
    branches = ir["components"][group["componentRef"]["name"]]["dag"]["tasks"].values()
    rules = {b["taskInfo"]["name"]: b["triggerPolicy"]["condition"] for b in branches}
    assert rules["gate-passed"].endswith("== 'passed'") and rules["gate-did-not-pass"] == f"!({rules['gate-passed']})"
    inner = {b["taskInfo"]["name"]: set(ir["components"][b["componentRef"]["name"]]["dag"]["tasks"]) for b in branches}
    assert inner == {"gate-passed": {"rollout"}, "gate-did-not-pass": {"record-rejection"}}
    # the dataset's version and content hash into tune (parameters: a stable cache key), the model into the gate
    for name in ("dataset_version", "content_hash"):
        assert tasks["tune"]["inputs"]["parameters"][name]["taskOutputParameter"]["producerTask"] == "etl"
    assert tasks["gate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "tune"
    # only the search is cached: the ETL checks its input itself, the gate and rollout depend on the registry
    assert tasks["tune"]["cachingOptions"] == {"enableCache": True}
    assert not tasks["etl"]["cachingOptions"] and not tasks["gate"]["cachingOptions"]


def test_components_are_thin_calls_of_the_stage_functions_on_a_pinned_image():
    ir = next(yaml.safe_load_all(COMPILED.read_text()))  # then the kubernetes platform spec
    executors = ir["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        image = executor["container"]["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        source = "\n".join(executor["container"]["command"])
        assert "pip install" not in source  # install_kfp_package=False: nothing is fetched at run time
        assert len(source.splitlines()) < 120, name  # thin: the logic stays in the package
    calls = {"etl": "data_platform.etl import run_etl", "tune": "ml_platform.tune import run_tune",
             "gate": "ml_platform.gate import run_gate", "rollout": "orchestration.flows import roll_out"}  # fmt: skip
    for component, call in calls.items():
        source = "\n".join(executors[f"exec-{component}"]["container"]["command"])
        assert call in source, component
        assert ".cli import" not in source, f"{component} calls a CLI command, not the stage function"


def test_the_image_installs_exactly_the_locked_dependencies():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M)  # pinned base, the project's Python
    syncs = re.findall(r"uv sync ([^\n]+)", text)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)  # the lock or nothing
    assert "COPY pyproject.toml uv.lock" in text
    project = tomllib.loads((settings.REPO_ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert f"COPY {package}/ {package}/" in text, package
    assert re.search(r"^USER \d+", text, re.M)  # not root
    assert pipeline.IMAGE.split(":")[0] in text and pipeline.IMAGE.split(":")[1] in text


def test_a_failing_task_is_one_error_naming_the_task_and_the_stages_message(isolated_settings, monkeypatch, capsys):
    from platform_core.errors import PlatformError

    monkeypatch.setenv("PLATFORM_DATASET", "no-such-dataset")  # the ETL task's stage refuses it
    with pytest.raises(PlatformError) as failure:
        pipeline.run_local()
    message = str(failure.value)
    assert message.startswith("pipeline task 'etl' failed: ConfigError: no contract ")
    assert "no-such-dataset.yaml" in message and "pipeline.log" in message
    console = capsys.readouterr().out
    assert "etl" in console and "failed in" in console
    assert "Traceback" not in console and "executor_input" not in console  # kfp's stream went to the log
    log = settings.state_dir() / "logs" / "pipeline.log"
    assert "Traceback" in log.read_text()


def test_the_dockerfile_passes_hadolint(tmp_path):
    import subprocess
    import sys

    hadolint = Path(sys.executable).with_name("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    found = subprocess.run([hadolint, bad], capture_output=True, text=True)
    assert found.returncode != 0 and "DL3007" in found.stdout  # the linter really lints: `latest` is flagged
    result = subprocess.run([hadolint, DOCKERFILE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
