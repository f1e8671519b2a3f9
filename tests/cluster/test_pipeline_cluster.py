"""The compiled pipeline as KFP would run it on the cluster: every task gets the deployment's settings and
credentials from objects that exist in KFP's namespace (manifests/deploy.sh copies them there, key by key), the
settings it gets are exactly the keys every built platform-settings ConfigMap holds, and its ServiceAccount may
patch the InferenceService in the platform's namespace and assume the S3 role on AWS."""

from __future__ import annotations

import re

import pytest
import yaml

from orchestration import pipeline

from .conftest import LEAVES, ROOT, settings_of
from .test_references import _applies, _data_keys, _qualified

COMPILED = ROOT / pipeline.COMPILED
DEPLOY = ROOT / "manifests" / "deploy.sh"
# Tasks that touch the platform (the rejection branch only prints the gate's reason).
PLATFORM_TASKS = ("exec-etl", "exec-tune", "exec-gate", "exec-rollout")


def _executors(path=COMPILED) -> dict[str, dict]:
    _spec, platform = yaml.safe_load_all(path.read_text())
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def task_references(executors: dict[str, dict]):
    """(kind, name, keys, optional, where) of every ConfigMap/Secret a compiled task reads as environment."""
    for task, config in executors.items():
        for ref in config.get("configMapAsEnv", []):
            keys = {k["configMapKey"] for k in ref["keyToEnv"]}
            yield "ConfigMap", ref["configMapName"], keys, ref.get("optional", False), task
        for ref in config.get("secretAsEnv", []):
            keys = {k["secretKey"] for k in ref["keyToEnv"]}
            yield "Secret", ref["secretName"], keys, ref.get("optional", False), task


def mirrored(script: str) -> dict[tuple[str, str], set[str] | None]:
    """What deploy.sh copies into KFP's namespace: (kind, name) -> the keys (None: every key)."""
    out = {}
    for kind, name, keys in re.findall(r"^\s*mirror (configmap|secret) ([\w-]+)((?: \w+)*)\s*$", script, re.M):
        out[("ConfigMap" if kind == "configmap" else "Secret", name)] = set(keys.split()) or None
    return out


def unreachable(executors, objects, prerequisites, leaf, script) -> list[str]:
    """References of the compiled tasks that KFP's namespace would not satisfy for `leaf`."""
    built = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    declared = {(e["kind"], _qualified(e)): e for e in prerequisites if _applies(e, leaf)}
    copies = mirrored(script)
    errors = []
    for kind, name, keys, optional, task in task_references(executors):
        if (kind, name) in built:
            have = _data_keys(built[(kind, name)])
        elif (kind, name) in declared:
            have = set(declared[(kind, name)].get("keys", []))
        elif optional:
            continue  # an optional Secret (the S3 keys) may be absent: IRSA instead
        else:
            errors.append(f"{task}: {kind} {name} is neither built nor a prerequisite of {leaf}")
            continue
        if keys - have:
            errors.append(f"{task}: {kind} {name} has no keys {sorted(keys - have)} in {leaf}")
        if (kind, name) not in copies:
            errors.append(f"{task}: deploy.sh does not copy {kind} {name} into KFP's namespace")
        elif copies[(kind, name)] is not None and keys - copies[(kind, name)]:
            errors.append(f"{task}: deploy.sh copies {kind} {name} without {sorted(keys - copies[(kind, name)])}")
    return errors


@pytest.fixture(scope="module")
def prerequisites() -> list[dict]:
    return yaml.safe_load((ROOT / "manifests" / "prerequisites.yaml").read_text())


def test_the_committed_pipeline_gives_every_platform_task_the_settings_and_credentials():
    executors = _executors()
    for task in PLATFORM_TASKS:
        refs = {(kind, name): (keys, optional) for kind, name, keys, optional, where in task_references(executors)
                if where == task}  # fmt: skip
        assert refs[("ConfigMap", pipeline.SETTINGS_CONFIG_MAP)] == (set(pipeline.SETTINGS_KEYS), False), task
        assert refs[("Secret", "mlflow-auth")][1] is False, f"{task}: MLflow refuses anonymous clients"
        assert refs[("Secret", "s3-credentials")][1] is True, f"{task}: on AWS there is no key Secret (IRSA)"


def test_the_tasks_get_exactly_the_settings_every_build_holds(builds):
    shared = set.intersection(*(set(settings_of(builds[leaf])) for leaf in LEAVES))
    assert set(pipeline.SETTINGS_KEYS) == shared, (
        f"missing in the pipeline: {sorted(shared - set(pipeline.SETTINGS_KEYS))}; "
        f"absent from some build: {sorted(set(pipeline.SETTINGS_KEYS) - shared)}"
    )


@pytest.mark.parametrize("leaf", LEAVES)
def test_every_task_reference_exists_in_kfps_namespace_after_deploy(deployed, prerequisites, leaf):
    errors = unreachable(_executors(), deployed[leaf], prerequisites, leaf, DEPLOY.read_text())
    assert not errors, "\n".join(errors)


def test_the_reachability_check_bites(deployed, prerequisites):
    executors, objects, script = _executors(), deployed["production-ionos"], DEPLOY.read_text()
    assert unreachable(executors, objects, prerequisites, "production-ionos", script) == []
    no_mirror = script.replace("mirror secret mlflow-auth", "true mlflow-auth")
    assert any("does not copy Secret mlflow-auth" in e
               for e in unreachable(executors, objects, prerequisites, "production-ionos", no_mirror))  # fmt: skip
    one_key = script.replace(
        "mirror secret s3-credentials accessKey secretKey", "mirror secret s3-credentials accessKey"
    )
    assert any("without ['secretKey']" in e
               for e in unreachable(executors, objects, prerequisites, "production-ionos", one_key))  # fmt: skip
    trimmed = [dict(o, data={k: v for k, v in o["data"].items() if k != "PLATFORM_TRACKING_URI"})
               if o["metadata"]["name"] == "platform-settings" else o for o in objects]  # fmt: skip
    assert any("has no keys ['PLATFORM_TRACKING_URI']" in e
               for e in unreachable(executors, trimmed, prerequisites, "production-ionos", script))  # fmt: skip


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_pipeline_runner_may_roll_out_in_the_platforms_namespace(builds, prerequisites, leaf):
    objects, s = builds[leaf], settings_of(builds[leaf])
    binding = next(
        o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "platform-pipeline-runner"
    )
    runner = next(e for e in prerequisites if e["kind"] == "ServiceAccount" and e["name"] == "pipeline-runner")
    # KFP's manifests fix its namespace; the setting must name the same one
    assert s["PLATFORM_KFP_NAMESPACE"] == runner["namespace"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": runner["namespace"]}
    ]
    assert binding["metadata"]["namespace"] == s["PLATFORM_K8S_NAMESPACE"]
    role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == binding["roleRef"]["name"])
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    # what inference_service/rollout/cluster.py does: get, create (first serve), patch (canary), watch (wait)
    assert rules == {("serving.kserve.io", "inferenceservices"): {"get", "list", "watch", "create", "patch"}}
    # MLflow admits the tasks' namespace
    policy = next(o for o in objects if o["metadata"]["name"] == "allow-mlflow-from-kubeflow")
    peer = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert peer == {"kubernetes.io/metadata.name": s["PLATFORM_KFP_NAMESPACE"]}


def test_on_aws_the_pipeline_runner_is_trusted_by_the_platform_role_and_annotated_with_it():
    tf = (ROOT / "terraform" / "modules" / "aws" / "eks.tf").read_text()
    assert "system:serviceaccount:${var.kfp_namespace}:pipeline-runner" in tf
    variables = (ROOT / "terraform" / "modules" / "aws" / "variables.tf").read_text()
    default = re.search(r'variable "kfp_namespace" \{.*?default\s*=\s*"([^"]+)"', variables, re.S)
    assert default and default.group(1) == "kubeflow"
    # deploy.sh annotates kubeflow/pipeline-runner with the leaf's role: test_tasks checks the recorded call
