"""checkov on terraform/ and manifests/ (run once, in its own tool environment): no failed check, and every skipped
check carries its one-line reason where it is skipped."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml

from .conftest import CHECKOV_VERSION, ROOT, VENV_BIN, run, tool

# terraform/ as HCL, the leaves (manifests/overlays/) through checkov's kustomize framework, and the fully rendered
# leaves as plain Kubernetes objects (the kustomize framework only partly follows overlays). Not manifests/ as a
# whole: base and components are never applied alone (their placeholders are filled by components/wiring), and
# checkov would build each on its own.
FRAMEWORKS = {"terraform": "terraform", "manifests": "kustomize", "rendered overlays": "kubernetes"}


@pytest.fixture(scope="module")
def checkov_reports(builds, tmp_path_factory) -> dict[str, list[dict]]:
    uv = tool("uv")
    rendered = tmp_path_factory.mktemp("rendered")
    for overlay, objects in builds.items():
        (rendered / f"{overlay.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    targets = {
        "terraform": ROOT / "terraform",
        "manifests": ROOT / "manifests" / "overlays",
        "rendered overlays": rendered,
    }
    reports = {}
    # kustomize builds through the venv's kubectl; sequentially: checkov's forked kustomize renders share a
    # multiprocessing dict and crash now and then with BrokenPipeError (seen with four leaves)
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", CHECKOV_PARALLELIZATION_TYPE="none")
    for directory, framework in FRAMEWORKS.items():
        res = run([uv, "tool", "run", "--from", f"checkov=={CHECKOV_VERSION}", "checkov", "--skip-download",
                   "-o", "json", "-d", str(targets[directory]), "--framework", framework],
                  env=env, timeout=600)  # fmt: skip
        if res.returncode not in (0, 1) or not res.stdout.strip().startswith(("{", "[")):
            if "No solution found" in res.stderr or "Failed to download" in res.stderr:
                pytest.skip(f"checkov {CHECKOV_VERSION} cannot be installed here: {res.stderr.strip()[-200:]}")
            pytest.fail(f"checkov did not run on {directory}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
        data = json.loads(res.stdout)
        reports[directory] = data if isinstance(data, list) else [data]
    return reports


@pytest.mark.parametrize("directory", list(FRAMEWORKS))
def test_checkov_passes(checkov_reports, directory):
    results = [r["results"] for r in checkov_reports[directory] if "results" in r]
    assert results, f"checkov scanned nothing in {directory}"
    passed = sum(len(r["passed_checks"]) for r in results)
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in results for c in r["failed_checks"]]
    assert passed > 20, f"checkov passed only {passed} checks in {directory}: is it scanning?"
    assert not failed, f"checkov failures in {directory}: {failed}"


@pytest.mark.parametrize("directory", list(FRAMEWORKS))
def test_every_skip_has_a_reason(checkov_reports, directory):
    skipped = [c for r in checkov_reports[directory] if "results" in r for c in r["results"]["skipped_checks"]]
    for check in skipped:
        comment = (check.get("check_result") or {}).get("suppress_comment", "")
        assert comment and len(comment.split()) >= 5, f"{check['check_id']} on {check['resource']}: no reason given"


def test_in_place_skips_are_one_line_with_reason():
    pattern = re.compile(r"#checkov:skip=(CKV\w+):(.*)$|checkov\.io/skip\d+:\s*(CKV\w+)=(.*)$")
    found = 0
    for path in list((ROOT / "terraform").rglob("*.tf")) + list((ROOT / "manifests").rglob("*.yaml")):
        for line in path.read_text().splitlines():
            m = pattern.search(line)
            if m:
                found += 1
                reason = (m.group(2) or m.group(4) or "").strip()
                assert len(reason.split()) >= 5, f"{path.name}: skip without a real reason: {line.strip()}"
    assert found, "no in-place skips found: the pattern is wrong or the skips moved"
