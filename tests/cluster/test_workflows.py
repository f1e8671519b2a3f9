"""GitHub workflows and devbox: schema-valid, actions pinned by SHA, every task target/script they call exists, and
the images workflow builds every image the bundle references under the tag the bundle pins."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tomllib

import pytest
import yaml

from platform_core import settings

from .conftest import ROOT, ZIZMOR_VERSION, run, settings_of, tool
from .k8s_objects import images

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# Targets other issues add; listed here so the workflows can call them today. Remove a line once it exists.
PENDING_TARGETS: dict[str, str] = {}  # targets workflows may call before they exist (none now)


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "retrain.yml", "deploy.yml", "images.yml"}


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


# --- the images workflow against the bundle -------------------------------------------------------------------------
IMAGES = ROOT / ".github" / "workflows" / "images.yml"
IMAGE_KEYS = ("PLATFORM_IMAGE", "PLATFORM_SERVING_IMAGE", "PLATFORM_SPARK_IMAGE")  # the project's own images
OWN = "ghcr.io/kfserve-bundle/"


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _pushed_version(doc: dict, ref_name: str, tmp_path) -> tuple[int, str]:
    """Run the workflow's version step as a tag push `ref_name` runs it: (exit code, the version it outputs)."""
    step = next(s for s in doc["jobs"]["build"]["steps"] if s.get("id") == "version")
    out = tmp_path / "github_output"
    out.write_text("")
    env = dict(os.environ, REF_NAME=ref_name, REF_TYPE="tag", GITHUB_OUTPUT=str(out))
    res = run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env=env, timeout=30)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return res.returncode, outputs.get("version", "")


def _expand(text: str, values: dict[str, str]) -> str:
    """A workflow value with its `${{ name }}` expressions replaced (every one must be in `values`)."""
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m[1]], text)


def pushed_images(doc: dict, version: str) -> dict[str, str]:
    """{image reference: Dockerfile} the workflow's build-push step pushes, per matrix entry, for `version`."""
    job = doc["jobs"]["build"]
    step = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    pushed = {}
    for entry in job["strategy"]["matrix"]["include"]:
        values = {**{f"matrix.{k}": str(v) for k, v in entry.items()}, "steps.version.outputs.version": version}
        for tag in _expand(step["with"]["tags"], values).replace(",", "\n").split():
            pushed[tag] = _expand(step["with"]["file"], values)
    return pushed


def referenced_images(deployed: dict[str, list[dict]]) -> dict[str, list[str]]:
    """{image: [where]} of the project's own images: what each leaf deploys (pods, custom resources, its settings),
    the settings' defaults and the compiled pipeline's tasks."""
    found: dict[str, list[str]] = {}
    for leaf, objects in deployed.items():
        for key in IMAGE_KEYS:
            found.setdefault(settings_of(objects)[key], []).append(f"{leaf} platform-settings {key}")
        for obj in objects:
            for where, image in images(obj):
                if image.startswith(OWN):
                    found.setdefault(image, []).append(f"{leaf} {where}")
    for setting in (settings.IMAGE, settings.SERVING_IMAGE, settings.SPARK_IMAGE):
        found.setdefault(setting.default, []).append(f"platform_core/settings.py {setting.name}")
    pipeline = next(yaml.safe_load_all((ROOT / "manifests" / "pipelines" / "kfserve-bundle.yaml").read_text()))
    for name, executor in pipeline["deploymentSpec"]["executors"].items():
        found.setdefault(executor["container"]["image"], []).append(f"compiled pipeline {name}")
    return found


def unbuilt(doc: dict, referenced: dict[str, list[str]], version: str) -> list[str]:
    """What the bundle references that the workflow does not push from an existing Dockerfile for `version`."""
    pushed = pushed_images(doc, version)
    errors = [f"{image} (used by {', '.join(where)}) is not pushed by images.yml for tag v{version}"
              for image, where in sorted(referenced.items()) if image not in pushed]  # fmt: skip
    for image, dockerfile in pushed.items():
        path = ROOT / dockerfile
        if not path.is_file():
            errors.append(f"images.yml builds {image} from {dockerfile}, which does not exist")
            continue
        # Each Dockerfile names the image it builds in its build command comment: the same file, name and tag.
        named = re.findall(r"docker build -f (\S+) -t (\S+) \.", path.read_text())
        if named != [(dockerfile, image)]:
            errors.append(f"images.yml builds {image} from {dockerfile}, whose build command says {named}")
    return errors


def test_the_images_workflow_pushes_every_image_the_bundle_references(deployed, tmp_path):
    doc = yaml.safe_load(IMAGES.read_text())
    version = _version()
    code, pushed_version = _pushed_version(doc, f"v{version}", tmp_path)
    assert (code, pushed_version) == (0, version), "tag v<pyproject version> must push <pyproject version>"
    referenced = referenced_images(deployed)
    assert {ref.rsplit(":", 1)[1] for ref in referenced} == {version}, f"the bundle's tags are not {version}"
    assert len({ref.rsplit(":", 1)[0] for ref in referenced}) == 3, sorted(referenced)
    errors = unbuilt(doc, referenced, pushed_version)
    assert not errors, "\n".join(errors)
    job = doc["jobs"]["build"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as true
    assert on["push"]["tags"] == ["v*"] and "workflow_dispatch" in on


def test_a_tag_other_than_the_pyproject_version_pushes_nothing(tmp_path):
    code, version = _pushed_version(yaml.safe_load(IMAGES.read_text()), "v99.0.0", tmp_path)
    assert code != 0 and version == ""


def test_an_image_left_out_of_the_workflow_fails_the_check(deployed):
    doc = yaml.safe_load(IMAGES.read_text())
    referenced, version = referenced_images(deployed), _version()
    assert unbuilt(doc, referenced, version) == []
    missing = copy.deepcopy(doc)
    include = missing["jobs"]["build"]["strategy"]["matrix"]["include"]
    include[:] = [e for e in include if e["image"] != "platform-spark"]
    errors = unbuilt(missing, referenced, version)
    assert errors and all("platform-spark:" in e for e in errors)
    assert any("SparkApplication/platform-etl-iris" in e for e in errors)
    swapped = copy.deepcopy(doc)  # the right name built from another image's Dockerfile
    entries = swapped["jobs"]["build"]["strategy"]["matrix"]["include"]
    entries[0]["dockerfile"], entries[1]["dockerfile"] = entries[1]["dockerfile"], entries[0]["dockerfile"]
    assert len(unbuilt(swapped, referenced, version)) == 2
    assert unbuilt(doc, referenced, "0.0.1")  # another version: nothing the bundle uses is pushed
