"""`task notebook`: JupyterLab on 127.0.0.1 with token auth, opened on ml_platform/notebooks/, as a platform
Daemon (PID file, own process group, log under <state>/logs) that `task down` stops.

Its kernels run in this venv (the server's own interpreter provides the default `python3` kernel) and inherit
the server's environment: the stack's endpoints and MLflow/S3 credentials (settings.client_env()) plus every
PLATFORM_* setting of the shell that started it, so notebooks reach the same stack as the CLI.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from platform_core import settings
from platform_core.processes import free_port, port_in_use
from platform_core.stack import NOTEBOOK, notebook_info

NOTEBOOK_DIR = settings.REPO_ROOT / "ml_platform" / "notebooks"


@dataclass
class NotebookServer:
    url: str  # with the token: open it in a browser
    port: int
    pid: int
    already_running: bool


def _answers(port: int, token: str) -> bool:
    response = httpx.get(f"http://{settings.HOST.get()}:{port}/api/status", params={"token": token}, timeout=2)
    return response.status_code == 200


def start_notebook() -> NotebookServer:
    info = notebook_info()
    if (pid := NOTEBOOK.pid()) is not None and info:
        return NotebookServer(f"{info['url']}?token={info['token']}", info["port"], pid, True)
    port = settings.NOTEBOOK_PORT.get() or free_port(settings.HOST.get())
    if settings.NOTEBOOK_PORT.is_set() and port_in_use(settings.HOST.get(), port):
        NOTEBOOK.stop()  # an orphan of ours holding it is replaced; someone else's port is refused by start()
    token = secrets.token_hex(24)
    host = settings.HOST.get()
    info = {"port": port, "token": token, "url": f"http://{host}:{port}/lab"}
    path = settings.notebook_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written before the start: NOTEBOOK.ports() reads the port from it (orphan detection, `down`).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    runtime = settings.state_dir() / "jupyter"
    argv = [
        str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser",
        f"--ServerApp.ip={host}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={NOTEBOOK_DIR}", f"--IdentityProvider.token={token}",
        "--ServerApp.allow_remote_access=False", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI runners run as root; Jupyter refuses that unless told
        argv.append("--allow-root")
    env = {**settings.client_env(), "JUPYTER_RUNTIME_DIR": str(runtime / "runtime"),
           "JUPYTER_CONFIG_DIR": str(runtime / "config"), "IPYTHONDIR": str(runtime / "ipython")}  # fmt: skip
    pid = NOTEBOOK.start(argv, env=env)
    NOTEBOOK.wait_ready(lambda: _answers(port, token), timeout=90, what="JupyterLab")
    return NotebookServer(f"{info['url']}?token={token}", port, pid, False)
