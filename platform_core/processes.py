"""Background servers owned by the platform: started detached, found again by PID file and by port, stopped by
process group.

Every server runs in its own session under `platform_core.supervisor`, which leads the process group, rotates
the service's log and stops the group when the service's main process dies. The PID file holds the
supervisor's PID (= the group id). Every process also carries a marker in its environment naming the state
dir and service, so processes orphaned by `kill -9` of the supervisor are still recognised as ours by the
port they hold: `status` reports them, `down` stops them, and `up` replaces them instead of failing on "port
taken". Nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from platform_core import settings
from platform_core.errors import PlatformError, ServiceUnavailable

MARKER = "PLATFORM_DAEMON"


@dataclass(frozen=True)
class Daemon:
    name: str
    # The ports the service owns (read from settings when asked, so tests can move them).
    ports: Callable[[], tuple[int, ...]] = field(default=lambda: (), compare=False)

    @property
    def pid_file(self) -> Path:
        return settings.state_dir() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return settings.state_dir() / "logs" / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return f"{settings.state_dir()}:{self.name}"

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def pid(self) -> int | None:
        """PID of our running service (the group leader), or None."""
        pid = self._recorded_pid()
        return pid if pid is not None and _alive(pid) else None

    def orphans(self) -> set[int]:
        """Our processes still alive although the leader is gone: the rest of its group, or a process that owns
        one of the service's ports and carries our marker."""
        if self.pid() is not None:
            return set()
        found = set()
        if (pgid := self._recorded_pid()) is not None:
            found |= {p.pid for p in _group_members(pgid)}
        for pid in port_owners(self.ports()):
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).environ().get(MARKER) == self.marker:
                    found.add(pid)
        return found

    def state(self) -> str:
        if self.pid() is not None:
            return "running"
        return "orphaned" if self.orphans() else "stopped"

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start detached unless already running; replace our own orphan; refuse clearly if a port is taken by
        someone else."""
        if (pid := self.pid()) is not None:
            return pid
        self.stop()  # an orphan of ours holding the ports
        for port in self.ports():
            if port_in_use(settings.HOST.get(), port):
                raise PlatformError(
                    f"port {port} (needed by {self.name}) is already taken by another process",
                    "stop that process or choose other ports (see `platform settings`, PLATFORM_*_PORT)",
                )
        for path in (self.pid_file, self.log_file):
            path.parent.mkdir(parents=True, exist_ok=True)
        supervisor = [
            sys.executable, "-m", "platform_core.supervisor", str(self.log_file),
            str(settings.LOG_MAX_MB.get() * 1024 * 1024), str(settings.LOG_BACKUPS.get()), "--", *argv,
        ]  # fmt: skip
        proc = subprocess.Popen(
            supervisor, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), MARKER: self.marker}, start_new_session=True,
        )  # fmt: skip
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the service's group (and any orphan of ours), SIGKILL after `timeout`. Returns whether anything
        was running."""
        leader = self.pid()
        groups = {leader} if leader is not None else set()
        groups |= {_pgid(pid) for pid in self.orphans()} - {None}
        if (recorded := self._recorded_pid()) is not None and _group_members(recorded):
            groups.add(recorded)
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(_group_members(g) for g in groups) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        for pgid in groups:
            _reap_group(pgid)
        self.pid_file.unlink(missing_ok=True)
        return bool(groups)

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
        time.sleep(0.2)  # let the log writer flush what the dying process wrote last
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        # A zombie (exited, not yet reaped) answers signals but serves nothing.
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap_group(pgid: int) -> None:
    """Collect exit statuses of our own children in that group (the service and its log writer, when this
    process started them), so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def port_owners(ports: tuple[int, ...]) -> set[int]:
    """PIDs listening on any of `ports` (from the kernel's socket table; no traffic sent)."""
    if not ports:
        return set()
    wanted = set(ports)
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in wanted and c.pid
    }


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
