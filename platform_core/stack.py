"""The local stack: SeaweedFS (S3 with auth) and an MLflow tracking server (basic auth), both on 127.0.0.1.

`up` is idempotent and, if it fails halfway, stops what that call started; `down` stops exactly what the
platform started (by PID file and by the ports it owns); `status` says what runs where, orphans included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from platform_core import mlflow_server, runs, seaweed, settings, storage
from platform_core.errors import ConfigError, PlatformError
from platform_core.processes import Daemon

SEAWEED = Daemon("seaweedfs", ports=seaweed.all_ports)
MLFLOW = Daemon("mlflow", ports=lambda: (settings.MLFLOW_PORT.get(),))
# Started by inference_service (the proxy on the public serving ports, one process per revision behind it),
# stopped with the stack.
SERVING_PROXY = Daemon("serving-proxy", ports=lambda: (settings.SERVE_HTTP_PORT.get(), settings.SERVE_GRPC_PORT.get()))
REVISION_PREFIX = "revision-"


def revision_daemons() -> list[Daemon]:
    """Every revision that has a PID file (running or not), oldest first."""
    run = settings.state_dir() / "run"
    return [Daemon(p.stem) for p in sorted(run.glob(f"{REVISION_PREFIX}*.pid"))]


def _revision_url(daemon: Daemon) -> str:
    try:
        return daemon.pid_file.with_suffix(".url").read_text().strip()
    except FileNotFoundError:
        return "-"


def notebook_info() -> dict:
    """Port, token and URL of the running JupyterLab (written by ml_platform.notebook_server; 0600)."""
    try:
        return json.loads(settings.notebook_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}


# Started by ml_platform.notebook_server (`task notebook`), stopped with the stack. Its port may be a free one
# chosen at start, so it is read from the file the start wrote.
NOTEBOOK = Daemon("notebook", ports=lambda: tuple(p for p in (notebook_info().get("port"),) if p))


@dataclass
class ServiceStatus:
    name: str
    state: str  # running | orphaned | stopped
    pid: int | None
    url: str

    @property
    def running(self) -> bool:
        return self.state == "running"


def _bin(name: str) -> str:
    """Tools installed into the venv next to this interpreter (weed, mlflow) win over PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise PlatformError(f"`{name}` is not installed", "run ./setup-env")
    return found


def start_services() -> None:
    """Both processes first, then the waits: MLflow's start (most of `up`) does not touch S3, which it reaches
    only per artifact request."""
    SEAWEED.start(seaweed.argv(_bin("weed")))
    MLFLOW.start(mlflow_server.argv(_bin("mlflow")), env=mlflow_server.env())
    SEAWEED.wait_ready(lambda: storage.client().list_buckets() is not None, timeout=60, what="SeaweedFS S3")
    seaweed.verify_grpc_refuses_plaintext()
    storage.ensure_bucket(settings.BUCKET.get())
    MLFLOW.wait_ready(mlflow_server.answers_with_auth, timeout=120, what="MLflow")


def preflight() -> None:
    if settings.profile() != "local":
        raise ConfigError("`up` starts the local stack only", "unset PLATFORM_PROFILE or set it to local")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise PlatformError("Java is not installed (Spark needs Java 17+)", "install a JDK 17, e.g. openjdk-17-jre")


def up() -> list[ServiceStatus]:
    preflight()
    was_running = {d: d.pid() is not None for d in (SEAWEED, MLFLOW)}
    try:
        start_services()
        settings.apply_client_env()
        runs.close_orphaned_runs()  # left RUNNING by a search whose process or backend died
    except BaseException:
        # Leave things as they were: stop what this call started, keep what already ran.
        for daemon in (MLFLOW, SEAWEED):
            if not was_running[daemon]:
                daemon.stop()
        raise
    return status()


def spark_server() -> dict:
    """The long-lived Spark Connect server's record (PLATFORM_SPARK_SERVER; started by the ETL's first run), or {}."""
    try:
        record = json.loads(settings.spark_server_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else {}


def stop_spark_server(timeout: float = 30.0) -> bool:
    """Stop it with pyspark's own entry point (it checks that the pid is still that server, then SIGTERMs it) and
    wait for the JVM to end (SIGKILL after `timeout`) -> whether it ran."""
    if not (record := spark_server()):
        return False
    env = {**os.environ, "SPARK_LOCAL_CONNECT_DISCOVERY": str(settings.spark_server_file())}
    result = subprocess.run([sys.executable, "-m", "pyspark.sql.connect.local_server", "--stop"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    stopped = result.returncode == 0 and result.stdout.startswith("Stopped")
    if stopped:
        with contextlib.suppress(psutil.Error):
            server = psutil.Process(record["pid"])
            try:
                server.wait(timeout=timeout)
            except psutil.TimeoutExpired:
                server.kill()
    return stopped


def down() -> list[str]:
    """Stop what `up`, `serve`, `notebook` and the ETL started, newest first. Returns the names of those that were
    running."""
    stopped = [d.name for d in (NOTEBOOK, SERVING_PROXY, *revision_daemons(), MLFLOW, SEAWEED) if d.stop()]
    if stop_spark_server():
        stopped.append("spark-connect")
    for daemon in revision_daemons():
        daemon.pid_file.with_suffix(".url").unlink(missing_ok=True)
    return stopped


def status() -> list[ServiceStatus]:
    rows = []
    for name, daemon, url in (
        ("seaweedfs (S3)", SEAWEED, settings.s3_endpoint()),
        ("mlflow", MLFLOW, settings.tracking_uri()),
        ("serving proxy (v2, Caddy)", SERVING_PROXY, settings.serve_url()),
        *((f"revision {d.name.removeprefix(REVISION_PREFIX)}", d, _revision_url(d)) for d in revision_daemons()),
        ("notebook (JupyterLab)", NOTEBOOK, notebook_info().get("url", "-")),
    ):
        state = daemon.state()
        pid = daemon.pid() if state == "running" else min(daemon.orphans(), default=None)
        rows.append(ServiceStatus(name, state, pid, url))
    server = spark_server()
    if server and psutil.pid_exists(server["pid"]):
        rows.append(ServiceStatus("spark connect server", "running", server["pid"],
                                  f"sc://{server.get('host')}:{server.get('port')}"))  # fmt: skip
    return rows
