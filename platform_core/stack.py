"""The local stack: SeaweedFS (S3 with auth) and an MLflow tracking server, both on 127.0.0.1.

`up` is idempotent, `down` stops exactly what `up` started (by PID file), `status` says what runs where.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from platform_core import health, settings, storage
from platform_core.errors import ConfigError, PlatformError
from platform_core.processes import Daemon

SEAWEED = Daemon("seaweedfs")
MLFLOW = Daemon("mlflow")
MODEL_SERVER = Daemon("model-server")  # started by inference_service.server, stopped with the stack
# SeaweedFS components besides S3 take the ports after it (each also opens port+10000 for gRPC).
_WEED_COMPONENTS = ("master", "volume", "filer", "admin", "webdav", "s3.port.iceberg", "s3.port.lance")


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    url: str


def _bin(name: str) -> str:
    """Tools installed into the venv next to this interpreter (weed, mlflow) win over PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise PlatformError(f"`{name}` is not installed", "run ./setup-env")
    return found


def ensure_keys() -> Path:
    """Generate the local S3 identity once; it never leaves the ignored state dir."""
    path = settings.keys_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "platform",
            "credentials": [
                {"accessKey": "PLT" + secrets.token_hex(8).upper(), "secretKey": secrets.token_urlsafe(30)}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path.write_text(json.dumps({"identities": [identity]}, indent=2))
        path.chmod(0o600)
    return path


def weed_ports() -> dict[str, int]:
    base = settings.S3_PORT.get()
    return {"s3": base, **{name: base + i + 1 for i, name in enumerate(_WEED_COMPONENTS)}}


def start_seaweedfs() -> None:
    host, ports = settings.HOST.get(), weed_ports()
    data = settings.state_dir() / "s3"
    logs = settings.state_dir() / "logs" / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    port_flags = [f"-s3.port={ports['s3']}"] + [
        f"-{name}={port}" if name.startswith("s3.") else f"-{name}.port={port}"
        for name, port in ports.items()
        if name != "s3"
    ]
    argv = [
        _bin("weed"), f"-logdir={logs}", "mini", f"-dir={data}", f"-ip={host}", f"-ip.bind={host}",
        *port_flags, "-admin.ui=false", "-master.telemetry=false", f"-s3.config={ensure_keys()}",
    ]  # fmt: skip
    all_ports = tuple(ports.values()) + tuple(p + 10000 for p in ports.values())
    SEAWEED.start(argv, ports=all_ports)
    SEAWEED.wait_ready(lambda: storage.client().list_buckets() is not None, timeout=60, what="SeaweedFS S3")
    storage.ensure_bucket(settings.BUCKET.get())


def start_mlflow() -> None:
    db = settings.state_dir() / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    host, port = settings.HOST.get(), settings.MLFLOW_PORT.get()
    argv = [
        _bin("mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{db}",
        # The server proxies artifacts: clients need no S3 keys, only the tracking URI.
        "--artifacts-destination", f"s3://{settings.BUCKET.get()}/mlflow",
    ]  # fmt: skip
    env = {
        **settings.client_env(),
        # Job execution starts seven extra processes the platform does not use.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    MLFLOW.start(argv, env=env, ports=(port,))
    MLFLOW.wait_ready(health.mlflow_answers, timeout=120, what="MLflow")


def preflight() -> None:
    if settings.profile() != "local":
        raise ConfigError("`up` starts the local stack only", "unset PLATFORM_PROFILE or set it to local")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise PlatformError("Java is not installed (Spark needs Java 17+)", "install a JDK 17, e.g. openjdk-17-jre")


def up() -> list[ServiceStatus]:
    preflight()
    start_seaweedfs()
    start_mlflow()
    return status()


def down() -> list[str]:
    """Stop what `up` started, newest first. Returns the names of services that were running."""
    return [d.name for d in (MODEL_SERVER, MLFLOW, SEAWEED) if d.stop()]


def status() -> list[ServiceStatus]:
    return [
        ServiceStatus("seaweedfs (S3)", SEAWEED.pid() is not None, SEAWEED.pid(), settings.s3_endpoint()),
        ServiceStatus("mlflow", MLFLOW.pid() is not None, MLFLOW.pid(), settings.tracking_uri()),
        ServiceStatus("model server (v2)", MODEL_SERVER.pid() is not None, MODEL_SERVER.pid(), settings.serve_url()),
    ]
