"""GitHub workflows and devbox: schema-valid, actions pinned by SHA, every task target/script they call exists."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from .conftest import ROOT, ZIZMOR_VERSION, run, tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# Targets other issues add; listed here so the workflows can call them today. Remove a line once it exists.
PENDING_TARGETS: dict[str, str] = {}  # targets workflows may call before they exist (none now)


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "retrain.yml", "deploy.yml"}


def test_workflows_match_the_github_schema():
    checker = tool("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency (uv.lock)"
    res = run([checker, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    res = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)])
    assert res.returncode != 0


def test_zizmor_finds_nothing():
    uv = tool("uv")
    res = run([uv, "tool", "run", "--from", f"zizmor=={ZIZMOR_VERSION}", "zizmor", "--offline", "--no-progress",
               "--format", "plain", *map(str, WORKFLOWS)], timeout=180)  # fmt: skip
    if res.returncode != 0 and "No solution found" in res.stderr + res.stdout:
        pytest.skip(f"zizmor {ZIZMOR_VERSION} cannot be installed here")
    assert res.returncode == 0, res.stdout + res.stderr


def _steps():
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                yield path.name, step


def test_actions_are_pinned_by_full_commit_sha():
    uses = [(name, step["uses"]) for name, step in _steps() if "uses" in step]
    assert uses
    for name, ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{name}: {ref} is not pinned by commit SHA"


def test_secrets_only_from_the_secret_store():
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "secrets." in text
    assert not re.search(r"(?i)(AKIA[0-9A-Z]{16}|aws_secret_access_key:\s*[\"']?[A-Za-z0-9/+]{30,})", text)
    # the S3 endpoint is configuration passed to boto3, not a hand-built container action
    assert not re.search(r"uses:\s*docker://", text)


def _called_targets(command: str) -> list[str]:
    """Task targets a shell snippet runs via ./setup-env <target> or task <target>."""
    found = []
    for line in command.splitlines():
        for m in re.finditer(r"(?:\./setup-env|(?<![\w/-])task)\s+([^\s;&|]+)", line):
            target = m.group(1)
            if not target.startswith("-"):
                found.append(target)
    return found


def test_every_target_a_workflow_or_devbox_calls_exists(task_targets):
    calls = [(name, t) for name, step in _steps() if "run" in step for t in _called_targets(step["run"])]
    devbox = json.loads((ROOT / "devbox.json").read_text())
    for script, command in devbox["shell"]["scripts"].items():
        commands = command if isinstance(command, list) else [command]
        for c in commands:
            words = shlex.split(c)
            if words[0] in ("./setup-env", "task") and len(words) > 1:
                calls.append((f"devbox:{script}", words[1]))
            else:
                assert words[0] == "./setup-env", f"devbox script {script} runs {c!r}: use task targets"
    assert calls
    missing = [(where, t) for where, t in calls if t not in task_targets and t not in PENDING_TARGETS]
    assert not missing, f"called but not defined in Taskfile.yml: {missing}"


def test_called_target_parser():
    assert _called_targets("./setup-env etl && ./setup-env gate -- --promote") == ["etl", "gate"]
    assert _called_targets("task cluster:plan CLOUD=aws") == ["cluster:plan"]


def test_devbox_pins_the_tools_and_runs_setup_env():
    devbox = json.loads((ROOT / "devbox.json").read_text())
    packages = {p.split("@")[0]: p.split("@")[1] if "@" in p else None for p in devbox["packages"]}
    for tool_name in ("python", "jdk17", "go-task", "kubectl", "terraform", "kubernetes-helm", "jq", "shellcheck"):
        assert tool_name in packages, f"devbox lacks {tool_name}"
        assert packages[tool_name] and packages[tool_name] != "latest", f"{tool_name} is not pinned"
    assert packages["python"].startswith("3.11")
    assert packages["jdk17"].startswith("17")
    assert devbox["shell"]["init_hook"][0] == "./setup-env"


def test_devbox_scripts_match_the_readme():
    devbox = json.loads((ROOT / "devbox.json").read_text())
    readme = (ROOT / "README.md").read_text()
    for script in devbox["shell"]["scripts"]:
        assert f"devbox run {script}" in readme, f"README does not show `devbox run {script}`"


def test_deploy_runs_inside_the_cluster():
    """A hosted runner reaches neither the allow-listed API nor ClusterIP-only MLflow and Prometheus: the workflow
    only starts the bundle's in-cluster job (cluster:canary) and needs nothing but a kubeconfig and a runner inside
    the allow-list; the job gets every other credential from the cluster."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    job = doc["jobs"]["canary"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert _called_targets(runs)[-1] == "cluster:canary"
    secrets = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(doc)))
    assert secrets == {"KUBECONFIG_B64"}, f"the in-cluster job reads the cluster's Secrets, not {secrets}"
    assert "vars.PLATFORM_DEPLOY_RUNNER" in job["runs-on"], "the runner must be choosable (self-hosted, allow-listed)"
    for forbidden in ("canary:start", "canary:auto", "export"):
        assert forbidden not in _called_targets(runs), f"{forbidden} would run on the runner, outside the cluster"
