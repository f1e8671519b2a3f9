"""The CLI as a user meets it: errors a user can cause end in one line with the fix, exit code 1."""

import os
import subprocess
import sys

import pytest
import typer

from platform_cli import main as cli


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform_cli", *args],
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
    names = set(typer.main.get_command(cli.app).commands)
    assert {"up", "down", "status", "etl", "tune", "register", "export", "serve", "predict", "demo"} <= names


def test_taken_port_stops_up_with_one_clear_line(tmp_path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_cli("up", PLATFORM_S3_PORT=str(port), PLATFORM_STATE_DIR=str(tmp_path))
    assert result.returncode == 1
    assert f"port {port} (needed by seaweedfs) is already taken" in result.stdout + result.stderr
    assert not (tmp_path / "run" / "seaweedfs.pid").exists()


def test_missing_java_stops_up_with_one_clear_line(tmp_path):
    bin_dir = os.path.dirname(sys.executable)  # the venv only: no java on this PATH
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "platform_cli", "up"],
        capture_output=True,
        text=True,
        env={**env, "PATH": bin_dir, "PLATFORM_STATE_DIR": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 1
    assert "Java is not installed" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_stages_fail_fast_when_mlflow_is_down(tmp_path):
    from platform_core.processes import free_port

    env = {
        "PLATFORM_STATE_DIR": str(tmp_path),
        "PLATFORM_MLFLOW_PORT": str(free_port()),
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    for stage in ("tune", "register"):
        result = run_cli(stage, **env)
        assert result.returncode == 1, result.stderr
        assert "MLflow tracking server does not answer" in result.stdout + result.stderr
        assert "task up" in result.stdout + result.stderr


def test_a_client_error_while_a_stage_runs_is_named_as_the_lost_service(monkeypatch):
    from mlflow.exceptions import MlflowException

    from platform_core import health
    from platform_core.errors import ServiceUnavailable
    from platform_core.processes import free_port

    monkeypatch.setenv("PLATFORM_MLFLOW_PORT", str(free_port()))  # nothing listens there
    lost = health.diagnose(MlflowException("API request to ... failed with exception ... Max retries exceeded"))
    assert isinstance(lost, ServiceUnavailable) and "MLflow tracking server does not answer" in lost.message
    assert health.diagnose(ValueError("a bug stays a bug")) is None


def test_user_text_prints_literally_not_as_markup():
    # rich once swallowed `[ash]` as a style tag: a column name such as properties[ash] printed as `properties`
    result = run_cli("etl", "--raw-path", "/no/such/properties[ash]/[bold]x.data")
    assert result.returncode == 1
    assert "/no/such/properties[ash]/[bold]x.data" in result.stdout + result.stderr


def test_an_unexpected_error_is_one_line_naming_the_log_that_holds_the_traceback(monkeypatch, capsys, tmp_path):
    from platform_core import stack

    def broken():
        raise RuntimeError("boom [red]not a style[/red]\nsecond line")

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(stack, "status", broken)
    monkeypatch.setattr(sys, "argv", ["platform", "status"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    log = tmp_path / "logs" / "cli-errors.log"
    assert lines[0] == "✘ unexpected RuntimeError: boom [red]not a style[/red]"
    assert lines[1:] == [f"  the traceback is in {log}; please report it with that file"]
    assert "Traceback" not in out.out + out.err
    text = log.read_text()
    assert "platform status" in text and "Traceback (most recent call last)" in text and "second line" in text
