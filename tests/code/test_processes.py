import sys

import httpx
import pytest

from platform_core.errors import PlatformError, ServiceUnavailable
from platform_core.processes import Daemon, free_port, port_in_use


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def daemon(tmp_path, monkeypatch, port):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    d = Daemon("http-test", ports=lambda: (port,))
    yield d
    d.stop(timeout=5)


def _http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def test_start_is_idempotent_and_stop_kills_by_pid(daemon, port):
    pid = daemon.start(_http_server(port))
    daemon.wait_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200, 20, "http")
    assert daemon.start(_http_server(port)) == pid  # already running: no second process
    assert daemon.pid_file.read_text() == str(pid)
    assert daemon.stop() is True
    assert daemon.pid() is None and not daemon.pid_file.exists()
    assert not port_in_use("127.0.0.1", port)
    assert daemon.stop() is False


def test_taken_port_is_a_clear_error(daemon, port):
    other = Daemon("other", ports=lambda: (port,))
    other.start(_http_server(port))
    try:
        other.wait_ready(lambda: port_in_use("127.0.0.1", port), 20, "http")
        with pytest.raises(PlatformError, match=f"port {port}"):
            daemon.start(_http_server(port))
        assert daemon.pid() is None
    finally:
        other.stop()


def test_stale_pid_file_is_ignored(daemon):
    daemon.pid_file.parent.mkdir(parents=True, exist_ok=True)
    daemon.pid_file.write_text("999999")
    assert daemon.pid() is None and daemon.state() == "stopped"
    assert daemon.stop() is False  # nothing to stop; the stale file is cleared
    assert not daemon.pid_file.exists()


def test_process_that_dies_at_start_reports_its_log(daemon):
    daemon.start([sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"])
    with pytest.raises(ServiceUnavailable, match="boom: bad flag"):
        daemon.wait_ready(lambda: False, 20, "nothing")
