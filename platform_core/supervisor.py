"""Runs one service and copies its output into a size-capped, rotated log; the service's group dies with it.

`python -m platform_core.supervisor LOG MAX_BYTES BACKUPS -- ARGV...` is what `Daemon.start` launches in a
new session, so the supervisor leads the service's process group. When the service's main process exits for
any reason (including `kill -9`), the supervisor stops whatever the service left behind in the group (MLflow's
uvicorn worker, say) instead of leaving an orphan serving the port, then exits with the service's code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

GRACE_SECONDS = 10


def rotate(path: Path, backups: int) -> None:
    """LOG -> LOG.1 -> ... -> LOG.<backups>; the oldest falls off."""
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    if backups:
        path.replace(path.with_name(f"{path.name}.1"))
    else:
        path.unlink()


def copy(stream, path: Path, max_bytes: int, backups: int) -> None:
    out = path.open("ab")
    try:
        for line in iter(stream.readline, b""):
            if max_bytes and out.tell() and out.tell() + len(line) > max_bytes:
                out.close()
                rotate(path, backups)
                out = path.open("ab")
            out.write(line)
            out.flush()
    finally:
        out.close()


def _others_in_group() -> list[int]:
    me, group = os.getpid(), os.getpgid(0)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
                found.append(int(entry.name))
    return found


def _stop_leftovers() -> None:
    """SIGTERM the rest of the group, SIGKILL what is still there after the grace period."""
    os.killpg(0, signal.SIGTERM)  # this process ignores it
    deadline = time.monotonic() + GRACE_SECONDS
    while _others_in_group() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _others_in_group():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def main() -> None:
    log, max_bytes, backups = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    os.umask(0o077)  # logs may quote request data: owner-only
    if os.getpgid(0) != os.getpid():
        os.setsid()  # lead a group of our own: it is what gets stopped, never the caller's
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Ignored only after the child started (an ignored signal would be inherited): `down` signals the whole
    # group, and this process must outlive the service to keep its last words.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def reap() -> None:
        proc.wait()
        _stop_leftovers()  # closes the pipe's last writers, which ends the copy loop

    threading.Thread(target=reap, daemon=True).start()
    copy(proc.stdout, log, max_bytes, backups)
    proc.wait()
    sys.exit(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)


if __name__ == "__main__":
    main()
