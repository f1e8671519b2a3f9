"""Cluster task targets: they print what they touch, refuse clearly, and destroy only with confirmation."""

from __future__ import annotations

import os

import pytest

from .conftest import ROOT, run, tool


@pytest.fixture(scope="module")
def task():
    path = tool("task")
    if path is None:
        pytest.skip("go-task not found (./setup-env installs it into .venv)")
    return path


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IONOS_", "AWS_"))}
    env.update(extra)
    return env


def test_cluster_targets_exist(task_targets):
    wanted = {"cluster:plan", "cluster:apply", "cluster:kubeconfig", "cluster:install", "cluster:deploy",
              "cluster:destroy", "checkov", "bandit", "audit"}  # fmt: skip
    assert wanted <= task_targets


@pytest.mark.parametrize(
    ("extra", "needle"),
    [({}, "IONOS_TOKEN is not set"), ({"IONOS_TOKEN": "dummy"}, "IONOS_CLUSTER_ID is not set")],
)
def test_kubeconfig_fails_with_one_clear_line(task, extra, needle):
    res = run([task, "cluster:kubeconfig", "CLOUD=ionos"], cwd=ROOT, env=_env(**extra), timeout=60)
    assert res.returncode != 0
    ours = [line for line in res.stderr.splitlines() if line.startswith("cluster:kubeconfig:")]
    assert len(ours) == 1 and needle in ours[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (ROOT / ".platform" / "kubeconfig.tmp").exists()


def test_unknown_cloud_is_rejected(task):
    res = run([task, "cluster:plan", "CLOUD=gcp"], cwd=ROOT, env=_env(), timeout=60)
    assert res.returncode != 0
    assert "CLOUD" in res.stderr and "ionos" in res.stderr


def test_apply_needs_a_saved_plan(task):
    if (ROOT / "terraform" / "examples" / "aws" / "tfplan").exists():
        pytest.skip("a real saved plan exists in terraform/examples/aws (left alone)")
    res = run([task, "cluster:apply", "CLOUD=aws"], cwd=ROOT, env=_env(), timeout=60)
    assert res.returncode != 0
    assert "run task cluster:plan CLOUD=aws first" in res.stderr


@pytest.fixture
def fake_terraform(tmp_path):
    """A stand-in `terraform` on PATH that only records its arguments, so no test can ever destroy real state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "terraform.log"
    stub = bin_dir / "terraform"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    return bin_dir, log


def test_destroy_asks_and_does_nothing_without_yes(task, fake_terraform):
    bin_dir, log = fake_terraform
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = run([task, "cluster:destroy", "CLOUD=aws"], cwd=ROOT, env=env, timeout=60, input="")
    assert res.returncode != 0
    assert "--yes" in res.stderr
    assert not log.exists(), "terraform ran without confirmation"


def test_destroy_with_yes_says_what_it_deletes_then_runs(task, fake_terraform):
    bin_dir, log = fake_terraform
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = run([task, "cluster:destroy", "CLOUD=aws", "--yes"], cwd=ROOT, env=env, timeout=60, input="")
    assert res.returncode == 0, res.stderr
    assert "deletes the aws cluster, node pool" in res.stdout + res.stderr
    assert log.read_text().split() == ["destroy", "-input=false", "-auto-approve"]


def test_targets_print_what_they_touch(task):
    res = run([task, "--dry", "cluster:install"], cwd=ROOT, env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "cluster:install -> current kubectl context" in res.stdout + res.stderr
    res = run([task, "--dry", "cluster:deploy", "OVERLAY=production"], cwd=ROOT, env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "overlay production" in res.stdout + res.stderr


@pytest.fixture
def fake_kubectl(tmp_path):
    """A kubectl stand-in: `kustomize` runs the real kubectl, every other call is only recorded (no cluster here).
    FAKE_CREATE_ERROR makes `create` fail with that message."""
    real = tool("kubectl")
    log = tmp_path / "kubectl.log"
    stub = tmp_path / "kubectl"
    stub.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = kustomize ]; then exec "{real}" "$@"; fi\n'
        f'echo "$*" >> "{log}"\n'
        'if [ "$1" = create ] && [ -n "${FAKE_CREATE_ERROR:-}" ]; then echo "$FAKE_CREATE_ERROR" >&2; exit 1; fi\n'
    )
    stub.chmod(0o755)
    return stub, log


def _deploy(task, stub, *args, **env):
    return run([task, "cluster:deploy", f"KUBECTL={stub}", *args], cwd=ROOT, env=_env(**env), timeout=120)


def test_deploy_applies_the_build_and_never_overwrites_secrets(task, fake_kubectl, tmp_path):
    stub, log = fake_kubectl
    isvc = tmp_path / "isvc.yaml"
    isvc.write_text("kind: InferenceService\n")
    (tmp_path / "servingruntime.yaml").write_text("kind: ServingRuntime\n")
    res = _deploy(task, stub, "OVERLAY=dev", f"ISVC_FILE={isvc}", PLATFORM_ROLE_ARN="arn:aws:iam::1:role/x")
    assert res.returncode == 0, res.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("apply -f ") and calls[0].endswith("-l platform/example-secret!=true")
    assert calls[1].startswith("create -f ") and "-l platform/example-secret=true --save-config" in calls[1]
    assert calls[2].startswith("-n ml-platform annotate --overwrite serviceaccount mlflow ray-tune kserve-s3")
    assert calls[3] == f"-n ml-platform apply -f {tmp_path / 'servingruntime.yaml'}"  # the runtime it names, first
    assert calls[4] == f"-n ml-platform apply -f {isvc}"


def test_deploy_production_has_no_example_secrets_and_reports_missing_isvc(task, fake_kubectl, tmp_path):
    stub, log = fake_kubectl
    res = _deploy(task, stub, "OVERLAY=production", f"ISVC_FILE={tmp_path / 'absent.yaml'}")
    assert res.returncode == 0, res.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and calls[0].startswith("apply -f ")
    assert "no InferenceService at" in res.stdout


def test_deploy_tolerates_existing_secrets_but_not_other_errors(task, fake_kubectl, tmp_path):
    stub, _ = fake_kubectl
    absent = f"ISVC_FILE={tmp_path / 'absent.yaml'}"
    exists = 'Error from server (AlreadyExists): secrets "mlflow-db" already exists'
    assert _deploy(task, stub, "OVERLAY=dev", absent, FAKE_CREATE_ERROR=exists).returncode == 0
    res = _deploy(task, stub, "OVERLAY=dev", absent, FAKE_CREATE_ERROR="error: You must be logged in to the server")
    assert res.returncode != 0
    assert "logged in" in res.stderr
