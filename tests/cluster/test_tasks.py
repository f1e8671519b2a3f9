"""Cluster task targets: they print what they touch, refuse clearly, and destroy only with confirmation."""

from __future__ import annotations

import os

import pytest
import yaml

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
              "cluster:canary", "cluster:destroy", "checkov", "bandit", "audit"}  # fmt: skip
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
    res = run([task, "--dry", "cluster:deploy", "OVERLAY=production", "CLOUD=aws"], cwd=ROOT, env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "overlay production, cloud aws" in res.stdout + res.stderr


@pytest.fixture
def fake_kubectl(tmp_path):
    """A kubectl stand-in: `kustomize` runs the real kubectl, every other call is only recorded (no cluster here),
    with a copy of each file passed by -f (calls/<n>.yaml). FAKE_CREATE_OUTPUT makes `create` print that and fail;
    FAKE_GET_RC makes `get` fail; `get` prints FAKE_GET (a job's succeeded/failed, default 1/)."""
    real = tool("kubectl")
    log = tmp_path / "kubectl.log"
    calls = tmp_path / "calls"
    calls.mkdir()
    stub = tmp_path / "kubectl"
    stub.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = kustomize ]; then exec "{real}" "$@"; fi\n'
        # one line per call: a go-template argument's newlines are logged as \x1e (decoded by _calls)
        f'printf "%s\\n" "$(printf "%s" "$*" | tr "\\n" "\\036")" >> "{log}"\n'
        f'n=$(wc -l < "{log}"); prev=""\n'
        f'for a in "$@"; do [ "$prev" = -f ] && cat "$a" > "{calls}/$n.yaml"; prev="$a"; done\n'
        'case " $* " in\n'
        '  *" create -f "*) if [ -n "${FAKE_CREATE_OUTPUT:-}" ]; then echo "$FAKE_CREATE_OUTPUT"; exit 1; fi ;;\n'
        '  *" get "*) [ -z "${FAKE_GET_RC:-}" ] || exit "$FAKE_GET_RC"; echo "${FAKE_GET:-1/}" ;;\n'
        "esac\n"
    )
    stub.chmod(0o755)
    return stub, log


def _calls(log) -> list[str]:
    return [
        line.replace("\x1e", "\n") for line in log.read_text().split("\n")[:-1]
    ]  # not splitlines: it splits at \x1e too


def _copies(calls: list[str]) -> list[tuple[str, str]]:
    """The objects deploy.sh copied into KFP's namespace: each a `get -o go-template` of the platform's namespace
    piped into `apply -f -` (the two ends of a pipe log in either order)."""
    gets = [c for c in calls if c != "apply -f -"]
    assert calls.count("apply -f -") == len(gets), calls
    assert all(c.startswith("-n ml-platform get ") and "namespace: kubeflow" in c for c in gets), gets
    return [(c.split()[3], c.split()[4]) for c in gets]


def _deploy(task, stub, *args, **env):
    return run([task, "cluster:deploy", f"KUBECTL={stub}", *args], cwd=ROOT, env=_env(**env), timeout=120)


def _applied(log, n: int, selector: str) -> set[tuple[str, str]]:
    """(kind, name) of the objects call n (1-based) passed, filtered by its -l selector like kubectl does."""
    objects = [o for o in yaml.safe_load_all((log.parent / "calls" / f"{n}.yaml").read_text()) if o]
    wanted = []
    for term in selector.split(","):
        key, value = term.replace("!=", "=").split("=")
        wanted.append((key, value, "!=" in term))
    return {(o["kind"], o["metadata"]["name"]) for o in objects
            if all((o["metadata"].get("labels", {}).get(k) == v) != negate for k, v, negate in wanted)}  # fmt: skip


def test_deploy_applies_the_build_and_creates_what_must_not_be_overwritten(task, fake_kubectl):
    stub, log = fake_kubectl
    res = _deploy(task, stub, "OVERLAY=dev", "CLOUD=ionos")
    assert res.returncode == 0, res.stderr
    calls = _calls(log)
    assert calls[0].startswith("apply -f ") and calls[0].endswith(
        "-l platform/example-secret!=true,platform/create-only!=true"
    )
    assert calls[1].startswith("create -f ") and calls[1].endswith("-l platform/example-secret=true --save-config")
    assert calls[2] == "-n ml-platform get secret s3-credentials"
    assert (
        calls[3]
        == "-n ml-platform label --overwrite secret s3-credentials secrets.stackable.tech/class=platform-s3-credentials"
    )
    assert calls[4] == (
        "-n ml-platform annotate --overwrite secret s3-credentials serving.kserve.io/s3-endpoint="
        "s3.eu-central-3.ionoscloud.com serving.kserve.io/s3-usehttps=1 serving.kserve.io/s3-region=eu-central-3"
    )
    assert calls[5].startswith("create -f ") and calls[5].endswith("-l platform/create-only=true --save-config")
    # the pipeline's settings and credentials, copied into KFP's namespace (key by key for Secrets)
    assert calls[6] == "get namespace kubeflow"
    assert _copies(calls[7:]) == [("configmap", "platform-settings"), ("secret", "mlflow-auth"),
                                  ("secret", "s3-credentials")]  # fmt: skip
    assert len(calls) == 13
    applied = _applied(log, 1, "platform/example-secret!=true,platform/create-only!=true")
    assert {("ServingRuntime", "platform-xgboost"), ("Deployment", "mlflow"), ("CronJob", "platform-deploy")} <= applied
    assert not {k for k, _ in applied} & {"RayJob", "SparkApplication", "InferenceService", "Secret"}
    assert _applied(log, 2, "platform/example-secret=true") == {
        ("Secret", n) for n in ("s3-credentials", "mlflow-db", "mlflow-auth")
    }
    # a re-deploy must not re-suspend a running search, restart the ETL or reset a canary: created, never applied
    run_once = {("RayJob", "tune"), ("SparkApplication", "platform-etl-iris"), ("InferenceService", "iris-xgboost")}
    assert _applied(log, 6, "platform/create-only=true") == run_once


def test_deploy_on_aws_touches_no_key_secret(task, fake_kubectl, tmp_path):
    stub, log = fake_kubectl
    res = _deploy(task, stub, "OVERLAY=production", "CLOUD=aws", f"ISVC_FILE={tmp_path / 'absent.yaml'}")
    assert res.returncode == 0, res.stderr
    calls = _calls(log)
    assert calls[0].startswith("apply -f ") and calls[1].startswith("create -f ")
    # no key Secret to copy on AWS: KFP's pipeline-runner gets the IRSA role instead
    assert _copies(calls[3:7]) == [("configmap", "platform-settings"), ("secret", "mlflow-auth")]
    assert calls[7] == (
        "-n kubeflow annotate --overwrite serviceaccount pipeline-runner "
        "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/ml-platform-platform-s3"
    )
    assert len(calls) == 8 and "s3-credentials" not in "\n".join(calls)
    assert "no InferenceService at" in res.stdout
    assert _applied(log, 2, "platform/create-only=true") == {
        ("RayJob", "tune"),
        ("SparkApplication", "platform-etl-iris"),
    }


def test_the_copies_into_kfps_namespace_keep_every_value_and_only_the_keys_the_tasks_read(task, fake_kubectl):
    """The go-templates deploy.sh copies with, rendered by the real kubectl against client-side objects holding
    awkward values (quotes, colons, a newline, a hash): what KFP's namespace gets is the same data, nothing more."""
    import base64

    stub, log = fake_kubectl
    assert _deploy(task, stub, "OVERLAY=dev", "CLOUD=ionos").returncode == 0
    templates = {c.split()[4]: c.split("-o go-template=", 1)[1] for c in _calls(log) if "-o go-template=" in c}
    values = {"PLATFORM_TRACKING_URI": "http://mlflow.ml-platform.svc.cluster.local:5000", "Q": 'say "hi": #1',
              "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": 'p:w "x" #',
              "MLFLOW_FLASK_SERVER_SECRET_KEY": "never-copied", "accessKey": "AK", "secretKey": "S/K+=="}  # fmt: skip
    sources = {"platform-settings": ("configmap", ["PLATFORM_TRACKING_URI", "Q"]),
               "mlflow-auth": ("secret generic", ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                                                  "MLFLOW_FLASK_SERVER_SECRET_KEY"]),
               "s3-credentials": ("secret generic", ["accessKey", "secretKey"])}  # fmt: skip
    assert set(templates) == set(sources)
    for name, (kind, keys) in sources.items():
        literals = [f"--from-literal={k}={values[k]}" for k in keys]
        res = run([tool("kubectl"), "create", *kind.split(), name, *literals, "--dry-run=client",
                   f"-o=go-template={templates[name]}"])  # fmt: skip
        assert res.returncode == 0, res.stderr
        copy = yaml.safe_load(res.stdout)
        assert copy["metadata"]["namespace"] == "kubeflow" and copy["metadata"]["name"] == name
        data = copy["data"]
        if kind == "configmap":
            assert data == {k: values[k] for k in keys}
        else:
            decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
            assert decoded == {k: values[k] for k in keys if k != "MLFLOW_FLASK_SERVER_SECRET_KEY"}


def test_deploy_on_ionos_needs_your_key_secret_first(task, fake_kubectl):
    stub, log = fake_kubectl
    res = _deploy(task, stub, "OVERLAY=production", "CLOUD=ionos", FAKE_GET_RC="1")
    assert res.returncode != 0
    assert "no Secret s3-credentials in ml-platform: create it first" in res.stderr
    assert not [c for c in _calls(log) if "create-only=true" in c], "nothing run-once was created"


def test_deploy_tolerates_existing_objects_but_not_other_errors(task, fake_kubectl):
    stub, _ = fake_kubectl
    exists = ('secret/mlflow-auth created\nError from server (AlreadyExists): secrets "mlflow-db" already exists\n'
              'Error from server (AlreadyExists): rayjobs.ray.io "tune" already exists')  # fmt: skip
    assert _deploy(task, stub, "OVERLAY=dev", "CLOUD=aws", FAKE_CREATE_OUTPUT=exists).returncode == 0
    res = _deploy(
        task, stub, "OVERLAY=dev", "CLOUD=aws", FAKE_CREATE_OUTPUT="error: You must be logged in to the server"
    )
    assert res.returncode != 0
    assert "logged in" in res.stderr


def test_deploy_rejects_an_unknown_cloud(task, fake_kubectl):
    stub, log = fake_kubectl
    res = _deploy(task, stub, "OVERLAY=dev", "CLOUD=gcp")
    assert res.returncode != 0 and "CLOUD" in res.stderr
    assert not log.exists()


def test_canary_runs_the_in_cluster_job_and_reports_its_outcome(task, fake_kubectl):
    stub, log = fake_kubectl
    res = run([task, "cluster:canary", f"KUBECTL={stub}"], cwd=ROOT, env=_env(GITHUB_RUN_ID="42"), timeout=60)
    assert res.returncode == 0, res.stderr
    calls = _calls(log)
    job = calls[0].split()[-1]
    assert calls[0] == f"-n ml-platform create job --from=cronjob/platform-deploy {job}" and job.startswith(
        "platform-deploy-42-"
    )
    assert calls[1].startswith(f"-n ml-platform get job {job} -o jsonpath=")
    assert calls[-1] == f"-n ml-platform logs job/{job}"
    assert "succeeded" in res.stdout
    res = run([task, "cluster:canary", f"KUBECTL={stub}"], cwd=ROOT, env=_env(FAKE_GET="/1"), timeout=60)
    assert res.returncode != 0 and "failed" in res.stderr


@pytest.fixture
def fake_cloud_clis(tmp_path):
    """terraform answering the example's outputs, aws recording its arguments and writing the kubeconfig."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "aws.log"
    (bin_dir / "terraform").write_text(
        '#!/bin/sh\ncase "$*" in *cluster_name*) echo mlp-test ;; *"-raw region"*) echo eu-central-1 ;; esac\n'
    )
    (bin_dir / "aws").write_text(
        f'#!/bin/sh\necho "$*" >> "{log}"\nprev=""\n'
        'for a in "$@"; do [ "$prev" = --kubeconfig ] && echo "apiVersion: v1" > "$a"; prev="$a"; done\n'
    )
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir, log


def test_aws_kubeconfig_names_the_clusters_region(task, fake_cloud_clis, tmp_path):
    """Without --region the AWS CLI looks for the cluster in the profile's default region."""
    bin_dir, log = fake_cloud_clis
    out = tmp_path / "kubeconfig"
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    res = run([task, "cluster:kubeconfig", "CLOUD=aws", f"KUBECONFIG_OUT={out}"], cwd=ROOT, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert log.read_text().split() == ["eks", "update-kubeconfig", "--region", "eu-central-1", "--name", "mlp-test",
                                       "--kubeconfig", f"{out}.tmp"]  # fmt: skip
    assert out.exists() and oct(out.stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [({}, "IONOS_TOKEN is not set"), ({"IONOS_TOKEN": "t"}, "IONOS_S3_ACCESS_KEY / IONOS_S3_SECRET_KEY are not set"),
     ({"IONOS_USERNAME": "u", "IONOS_PASSWORD": "p", "IONOS_S3_ACCESS_KEY": "a"}, "IONOS_S3_SECRET_KEY are not set")],
)  # fmt: skip
def test_ionos_plan_needs_the_object_storage_key_too(task, fake_terraform, extra, needle):
    """The ionoscloud provider creates the bucket only with an S3 key in IONOS_S3_ACCESS_KEY/SECRET_KEY."""
    bin_dir, log = fake_terraform
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}", **extra)
    res = run([task, "cluster:plan", "CLOUD=ionos"], cwd=ROOT, env=env, timeout=60)
    assert res.returncode != 0
    assert needle in res.stderr
    assert not log.exists(), "terraform ran without the provider's credentials"
    env.update(IONOS_TOKEN="t", IONOS_S3_ACCESS_KEY="a", IONOS_S3_SECRET_KEY="s")
    res = run([task, "cluster:plan", "CLOUD=ionos"], cwd=ROOT, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert _calls(log) == ["init -input=false", "plan -input=false -out=tfplan"]
