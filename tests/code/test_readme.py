"""The README's commands against what exists: every task target it names is in the Taskfile, and every command
of its local shell blocks is run by a test or says why it cannot be (tests/readme.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests import readme


def test_every_task_target_the_readme_names_exists():
    listed = subprocess.run([str(Path(sys.executable).parent / "task"), "--list-all", "--json"], cwd=readme.REPO,
                            capture_output=True, text=True, check=True)  # fmt: skip
    import json

    targets = {t["name"] for t in json.loads(listed.stdout)["tasks"]}
    named = set(re.findall(r"`task ([a-z][\w:-]*)", readme.README.read_text()))
    named |= {m for c in readme.local_commands() for m in re.findall(r"\btask ([a-z][\w:-]*)", c)}
    assert named and named <= targets, f"README names missing targets: {sorted(named - targets)}"


def test_every_local_readme_command_is_run_by_a_test_or_says_why_not():
    commands = readme.local_commands()
    assert len(commands) > 15, commands  # the parser finds the blocks
    for command in commands:
        where = readme.covering(command)  # KeyError: a README command nothing covers; add it to COVERAGE
        if where.startswith("not run: "):
            assert len(where) > len("not run: ") + 10, command
            continue
        source = (readme.REPO / where).read_text()
        key = readme.covering_key(command)
        assert f"readme.command({key!r})" in source or f'readme.command("{key}")' in source, (command, where)


def test_every_coverage_entry_is_still_in_the_readme():
    commands = readme.local_commands()
    stale = [k for k in readme.COVERAGE if not any(c == k or c.startswith(k + " ") for c in commands)]
    assert not stale, f"COVERAGE names commands the README no longer has: {stale}"


def test_the_run_rewrite_touches_only_ports_state_and_usage_brackets(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_SERVE_HTTP_PORT", "23456")
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    line = "curl http://127.0.0.1:18080/v2 -d @x.json && inference_service/prediction [request.json] .platform/c"
    assert readme.as_run_here(line) == (f"curl http://127.0.0.1:23456/v2 -d @x.json && inference_service/prediction "
                                        f"{tmp_path}/c")  # fmt: skip
