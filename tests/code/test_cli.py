"""The CLI as a user meets it: errors a user can cause end in one line with the fix, exit code 1."""

import os
import subprocess
import sys

import pytest

from platform_core import cli


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform_core.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("predict", "/does/not/exist.json"), {}, "does not exist"),
        (("up",), {"PLATFORM_S3_PORT": "abc"}, "PLATFORM_S3_PORT='abc' is not a valid int"),
        (("predict",), {"PLATFORM_SERVE_HTTP_PORT": "1"}, "no model server answers"),
        (("etl", "--raw-path", "/does/not/exist.data"), {}, "does not exist"),
    ],
)
def test_user_errors_are_one_clear_line(args, env, message):
    result = run_cli(*args, **env)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert message in output
    assert "fix:" in output
    assert "Traceback" not in output


def test_every_stage_has_a_command():
    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands}
    assert {"up", "down", "status", "etl", "tune", "register", "export", "serve", "predict", "demo"} <= names
