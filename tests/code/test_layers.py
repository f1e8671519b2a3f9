"""The layer contract (pyproject's [tool.importlinter]) holds for the code, and the check really bites: a copy of
the packages with one planted back-edge, circle or forbidden import fails it, naming the contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from platform_core import settings

PACKAGES = ("platform_cli", "orchestration", "inference_service", "ml_platform", "data_platform", "platform_core")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: a cache keyed on the files' mtimes could hide the planted line.
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_code_keeps_its_layers():
    result = _lint(settings.REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def copy(tmp_path):
    for package in PACKAGES:
        shutil.copytree(settings.REPO_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))  # fmt: skip
    shutil.copy(settings.REPO_ROOT / "pyproject.toml", tmp_path)
    assert _lint(tmp_path).returncode == 0  # the copy passes as it is
    return tmp_path


def _plant(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")


@pytest.mark.parametrize(("module", "line", "contract"), [
    # ml_platform reaching up into the rollout: the back-edge the layering exists to stop
    ("ml_platform/gate.py", "from inference_service.rollout import canary", "Layers"),
    # the predictor pod's code importing the registry (MLflow) through ml_platform
    ("inference_service/runtime/tensors.py", "from ml_platform import registry", "serving runtime needs"),
    ("inference_service/runtime/tensors.py", "import pyspark", "serving runtime needs"),
    # a circle inside one package: cluster -> canary while canary -> cluster
    ("inference_service/rollout/change.py", "from inference_service.rollout import canary", "No import circles"),
])  # fmt: skip
def test_a_planted_violation_fails_the_check(copy, module, line, contract):
    _plant(copy / module, line)
    result = _lint(copy)
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
