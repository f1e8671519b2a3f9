"""The local tracking server: `mlflow server` with MLflow's basic-auth app, sqlite in the state dir, artifacts
proxied to S3.

MLflow has no default admin password: on first `up` an admin login is generated into the state dir (0600),
together with the auth app's config and Flask secret. Anonymous requests get 401; the platform's clients
authenticate through MLFLOW_TRACKING_USERNAME/PASSWORD, which `settings.client_env()` exports.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx

from platform_core import settings
from platform_core.private_files import write_private

ADMIN_USER = "platform-admin"


def ensure_credentials() -> dict[str, str]:
    """The admin login and the server's Flask secret, generated once (the password is 32 random characters)."""
    path = settings.mlflow_credentials_file()
    if not path.exists():
        login = {"username": ADMIN_USER, "password": secrets.token_urlsafe(24), "flask_secret": secrets.token_hex(32)}
        write_private(path, json.dumps(login, indent=2))
    return json.loads(path.read_text())


def auth_config() -> Path:
    """The basic-auth app's ini: its own sqlite DB (absolute path), read-only default for other users."""
    login = ensure_credentials()
    db = settings.state_dir() / "mlflow" / "basic_auth.db"
    path = settings.state_dir() / "mlflow" / "basic_auth.ini"
    write_private(
        path,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{db}\n"
        f"admin_username = {login['username']}\n"
        f"admin_password = {login['password']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without MLflow's login cache every request pays a deliberately slow password hash (~0.35 s on 2
        # cores): a search's few hundred calls then spend minutes in it. The cache is keyed by an HMAC of
        # the password with a per-process secret; a changed password is honoured after at most the TTL.
        f"auth_cache_ttl_seconds = {settings.MLFLOW_AUTH_CACHE_S.get()}\n",
    )
    return path


def argv(mlflow: str) -> list[str]:
    db = settings.state_dir() / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return [
        mlflow, "server", "--app-name", "basic-auth",
        "--host", settings.HOST.get(), "--port", str(settings.MLFLOW_PORT.get()), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{db}",
        # The server proxies artifacts: clients need no S3 keys, only the tracking URI and a login.
        "--artifacts-destination", f"s3://{settings.BUCKET.get()}/mlflow",
    ]  # fmt: skip


def env() -> dict[str, str]:
    login = ensure_credentials()
    return {
        **settings.client_env(),
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config()),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": login["flask_secret"],
        # Job execution starts seven extra processes the platform does not use.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def answers_with_auth(timeout: float = 3.0) -> bool:
    """Ready = an authenticated API call succeeds (/health answers before the auth app is up)."""
    user, password = settings.mlflow_credentials()
    response = httpx.get(
        f"{settings.tracking_uri()}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "Default"},
        auth=(user, password),
        timeout=timeout,
    )
    return response.status_code == 200
