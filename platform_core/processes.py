"""Background servers owned by the platform: start detached, record the PID, stop exactly that process group.

Every server is started in its own session so `stop` can signal the whole group (MLflow forks workers),
and nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from platform_core import settings
from platform_core.errors import PlatformError, ServiceUnavailable


@dataclass(frozen=True)
class Daemon:
    name: str

    @property
    def pid_file(self) -> Path:
        return settings.state_dir() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return settings.state_dir() / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """PID of our running process, or None (a stale PID file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: list[str], env: dict[str, str] | None = None, ports: tuple[int, ...] = ()) -> int:
        """Start detached unless already running; refuse clearly if a port is taken by someone else."""
        if (pid := self.pid()) is not None:
            return pid
        for port in ports:
            if port_in_use(settings.HOST.get(), port):
                raise PlatformError(
                    f"port {port} (needed by {self.name}) is already taken by another process",
                    "stop that process or choose other ports (see `platform settings`, PLATFORM_*_PORT)",
                )
        for path in (self.pid_file, self.log_file):
            path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL it after `timeout`. Returns whether something was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `check` until it is true; fail with the log's tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                tail = self.log_tail()
                raise ServiceUnavailable(f"{self.name} exited during start-up:\n{tail}", f"see {self.log_file}")
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
                pass
            time.sleep(0.25)
        raise ServiceUnavailable(f"{what} not ready after {timeout:.0f}s", f"see {self.log_file}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0); treat it as gone.
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
