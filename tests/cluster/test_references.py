"""Referential integrity of what `task cluster:deploy` applies, per leaf: every Secret (and key), ConfigMap (and
key), ServiceAccount, SecretClass, ClusterRole, PVC, S3Connection, ServingRuntime and image a pod template references
is in the build or declared in manifests/prerequisites.yaml; and every declared prerequisite is really created where
it says (cluster:install = manifests/install.sh, you = a command in README "Deploy to a cluster")."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from .conftest import LEAVES, ROOT, settings_of
from .k8s_objects import images, references

PREREQUISITES = ROOT / "manifests" / "prerequisites.yaml"
CLUSTER_SCOPED = {"SecretClass", "ClusterRole"}


@pytest.fixture(scope="module")
def prerequisites() -> list[dict]:
    return yaml.safe_load(PREREQUISITES.read_text())


def _applies(entry: dict, leaf: str) -> bool:
    overlay, cloud = leaf.split("-")
    return cloud in entry.get("clouds", [cloud]) and overlay in entry.get("overlays", [overlay])


def _qualified(entry: dict) -> str:
    return f"{entry['namespace']}/{entry['name']}" if "namespace" in entry else entry["name"]


def _data_keys(obj: dict) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def dangling(objects: list[dict], prerequisites: list[dict], leaf: str) -> list[str]:
    """References of `objects` that neither the build nor the leaf's prerequisites satisfy."""
    built = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    declared = {(e["kind"], _qualified(e)): e for e in prerequisites if _applies(e, leaf)}
    errors = []
    for obj in objects:
        for kind, name, key, where in references(obj):
            if (kind, name) in built:
                target = built[(kind, name)]
                if key and kind in ("Secret", "ConfigMap") and key not in _data_keys(target):
                    errors.append(f"{where}: {kind} {name} has no key {key}")
            elif (kind, name) in declared:
                if key and key not in declared[(kind, name)].get("keys", []):
                    errors.append(f"{where}: prerequisite {kind} {name} declares no key {key}")
            else:
                errors.append(f"{where}: {kind} {name} is neither built nor in manifests/prerequisites.yaml")
    pinned = set(settings_of(objects).values())
    for obj in objects:
        errors += [f"{where}: image {image} is not one of platform-settings' pinned images"
                   for where, image in images(obj) if image not in pinned]  # fmt: skip
    return errors


@pytest.mark.parametrize("leaf", LEAVES)
def test_every_reference_is_built_or_a_declared_prerequisite(deployed, prerequisites, leaf):
    errors = dangling(deployed[leaf], prerequisites, leaf)
    assert not errors, f"{leaf}:\n" + "\n".join(errors)


@pytest.mark.parametrize("leaf", LEAVES)
def test_every_declared_prerequisite_is_needed(deployed, prerequisites, leaf):
    """A stale entry would make the list lie about what must exist before a deploy."""
    refs = {(kind, name) for obj in deployed[leaf] for kind, name, _, _ in references(obj)}
    built = {(o["kind"], o["metadata"]["name"]) for o in deployed[leaf]}
    for entry in (e for e in prerequisites if _applies(e, leaf)):
        assert (entry["kind"], _qualified(entry)) in refs, (
            f"{leaf}: {entry['kind']} {entry['name']} is never referenced"
        )
        assert (entry["kind"], entry["name"]) not in built, f"{leaf}: {entry['name']} is built, not a prerequisite"


def test_the_integrity_check_bites(deployed, prerequisites):
    """Each kind of dangling reference is reported: the defects of the past (a SecretClass defined nowhere, a
    ServiceAccount listing a Secret that exists on no cluster) and the general cases."""
    objects = deployed["production-aws"]
    assert dangling(objects, prerequisites, "production-aws") == []

    def broken(change, leaf="production-aws", source=objects):
        mutated = copy.deepcopy(source)
        change(mutated)
        return "\n".join(dangling(mutated, prerequisites, leaf))

    def sa_secret(objs):
        next(o for o in objs if o["metadata"]["name"] == "kserve-s3")["secrets"] = [{"name": "s3-credentials"}]

    def secret_class(objs):
        next(o for o in objs if o["kind"] == "S3Connection")["spec"]["credentials"] = {"secretClass": "nowhere"}

    def missing_key(objs):
        deploy = next(o for o in objs if o["kind"] == "Deployment")
        deploy["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "mlflow-db", "key": "password"}}}
        )

    def pvc(objs):
        deploy = next(o for o in objs if o["kind"] == "Deployment")
        deploy["spec"]["template"]["spec"]["volumes"].append({"name": "d", "persistentVolumeClaim": {"claimName": "x"}})

    def image(objs):
        spark = next(o for o in objs if o["kind"] == "SparkApplication")
        spark["spec"]["sparkImage"]["custom"] = "ghcr.io/kfserve-bundle/platform-spark:latest"

    assert "Secret s3-credentials is neither built" in broken(sa_secret)
    assert "SecretClass nowhere is neither built" in broken(secret_class)
    assert "declares no key password" in broken(missing_key)
    assert "PersistentVolumeClaim x is neither built" in broken(pvc)
    assert "platform-spark:latest is not one of" in broken(image)


def test_prerequisites_are_created_where_they_say(prerequisites, install_dry_run):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy to a cluster") :]
    section = section[: section.index("\n## ", 3)]
    assert {e["created_by"] for e in prerequisites} <= {"cluster:install", "you"}
    for entry in prerequisites:
        kind, name = entry["kind"], entry["name"]
        if entry["created_by"] == "cluster:install":
            if "file" in entry:
                assert f"-f {ROOT / entry['file']}" in " ".join(install_dry_run), f"install.sh does not apply {name}"
                docs = list(yaml.safe_load_all((ROOT / entry["file"]).read_text()))
                assert any(d["kind"] == kind and d["metadata"]["name"] == name for d in docs), entry["file"]
            elif "kustomize" in entry:  # an upstream kustomization install.sh applies (KFP's manifests)
                assert any(f"-k {entry['kustomize']}?ref=" in c for c in install_dry_run), entry["kustomize"]
            else:
                chart = entry["chart"]
                assert any(re.search(rf"helm upgrade --install \S+ \S*/{chart} ", c) for c in install_dry_run), chart
            assert kind in CLUSTER_SCOPED or kind == "Secret" or "namespace" in entry, kind
        else:
            assert kind == "Secret", f"{name}: only Secrets are yours to create"
            command = re.search(rf"create secret generic {name}\b(.*?)(?:\n(?!\s)|```)", section, re.S)
            assert command, f"README 'Deploy to a cluster' has no `kubectl create secret generic {name}`"
            given = set(re.findall(r"--from-(?:literal|file)=([\w.]+)=", command.group(1)))
            assert given == set(entry["keys"]), f"README creates {name} with {sorted(given)}, not {entry['keys']}"


def test_deploy_sets_the_label_the_secret_class_looks_for():
    """The user's s3-credentials carries no label; cluster:deploy adds the one the SecretClass searches by, taking
    the class from the build (test_tasks runs it with a recording kubectl)."""
    script = (ROOT / "manifests" / "deploy.sh").read_text()
    assert 'label --overwrite secret s3-credentials "secrets.stackable.tech/class=$class"' in script
    assert "class=$(sed -n 's/^ *secretClass: //p' \"$built\"" in script
