"""The README's serving, predict, canary and pipeline-compile commands, run as written (tests/readme.py) against
what the demo left serving, after the pipeline test and before test_demo_serving stops the served model."""

from __future__ import annotations

import json
import re

import pytest

from inference_service.rollout import canary
from platform_core import settings
from tests import readme

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _version(demo, alias: str) -> str:
    return str(demo.get_model_version_by_alias(settings.MODEL_NAME.get(), alias).version)


def _served() -> dict[str, int]:
    status = canary.status()
    versions = {r["name"]: str(r["version"]) for r in status["revisions"]}
    return {versions[t["revisionName"]]: t["percent"] for t in status["traffic"] if t["percent"]}


def test_the_request_by_hand_commands_answer(demo):
    curl = readme.run(readme.command("curl -s -X POST http://127.0.0.1:18080/v2/models/iris-xgboost/infer"))
    answer = json.loads(curl.stdout)
    assert answer["model_name"] == settings.MODEL_NAME.get() and len(answer["outputs"]) == 2
    assert "setosa" in readme.run(readme.command("inference_service/prediction")).stdout

    rows = json.loads((readme.REPO / "inference_service/input.json").read_text())["inputs"][0]["shape"][0]
    for command in (readme.command("task predict"), readme.command("task predict -- --grpc")):
        out = readme.run(command).stdout
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
        lines = [line for line in plain.splitlines() if re.fullmatch(r"row \d+: \S+ \(\d\.\d\d\)", line.strip())]
        assert len(lines) == rows and f"answered {rows} rows" in out, out
        assert "Traceback" not in out and '"outputs"' not in out
    out = readme.run(readme.command("task predict -- --json")).stdout
    (raw,) = [line for line in out.splitlines() if line.startswith("{")]  # one JSON line, nothing else of it
    assert json.loads(raw)["model_name"] == settings.MODEL_NAME.get()


def test_the_canary_commands_roll_out_promote_and_roll_back(demo):
    name = settings.MODEL_NAME.get()
    champion, previous = _version(demo, "champion"), _version(demo, "previous")
    # A real gated version that is not served: the model @champion replaced, as @challenger again.
    demo.set_registered_model_alias(name, "challenger", previous)

    readme.run(readme.command("task canary:start -- --alias challenger --percent 10"))
    assert _served() == {champion: 90, previous: 10}
    status = readme.run(readme.command("task canary:status")).stdout
    assert "10%" in status and "90%" in status
    readme.run(readme.command("task canary:set -- 50"))
    assert _served() == {champion: 50, previous: 50}
    readme.run(readme.command("task canary:promote"))
    assert _served() == {previous: 100} and _version(demo, "champion") == previous

    demo.set_registered_model_alias(name, "challenger", champion)  # the one just replaced, out again
    readme.run(readme.command("task canary:start -- --alias challenger --percent 10"))
    readme.run(readme.command("task canary:rollback"))
    assert _served() == {previous: 100} and _version(demo, "champion") == previous

    readme.run(readme.command("PLATFORM_SERVE_FAULTS=error_rate=0.3 task canary:start -- --alias challenger"))
    auto = readme.run(readme.command("task canary:auto")).stdout
    assert "rolled back after 2 failed checks" in auto, auto
    assert _served() == {previous: 100} and _version(demo, "champion") == previous


def test_compiling_the_pipeline_reproduces_the_committed_ir(demo):
    compiled = readme.REPO / "manifests/pipelines/kfserve-bundle.yaml"
    committed = compiled.read_text()
    readme.run(readme.command("task pipeline:compile"))
    assert compiled.read_text() == committed, "the committed pipeline IR is stale: run `task pipeline:compile`"
