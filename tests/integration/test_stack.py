"""The local stack for real: SeaweedFS with auth, MLflow, idempotent start, loopback only."""

import boto3
import botocore.exceptions
import httpx
import pytest

from platform_core import settings, storage

pytestmark = pytest.mark.integration


def test_s3_requires_the_generated_keys(local_stack):
    bucket = settings.BUCKET.get()
    assert bucket in {b["Name"] for b in storage.client().list_buckets()["Buckets"]}
    intruder = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint(),
        aws_access_key_id="guess",
        aws_secret_access_key="guess-secret",
        region_name="us-east-1",
    )
    with pytest.raises(botocore.exceptions.ClientError):
        intruder.list_objects_v2(Bucket=bucket)
    assert oct(settings.keys_file().stat().st_mode & 0o777) == "0o600"


def test_up_is_idempotent(local_stack):
    before = {s.name: s.pid for s in local_stack.status()}
    local_stack.up()
    after = {s.name: s.pid for s in local_stack.status()}
    assert before == after
    assert after["seaweedfs (S3)"] and after["mlflow"]


def test_mlflow_answers_and_stores_artifacts_on_s3(local_stack):
    assert httpx.get(f"{settings.tracking_uri()}/health", timeout=5).status_code == 200
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri())
    mlflow.set_experiment("stack-check")
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "probe/hello.txt")
    keys = storage.list_keys(f"s3://{settings.BUCKET.get()}/mlflow/")
    assert any(k.endswith(f"{run.info.run_id}/artifacts/probe/hello.txt") for k in keys)


def listening_addresses(ports: set[int]) -> dict[int, set[str]]:
    """Local addresses that listen on `ports`, read from the kernel's socket table (no traffic sent)."""
    import psutil

    found: dict[int, set[str]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports:
            found.setdefault(conn.laddr.port, set()).add(conn.laddr.ip)
    return found


LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def test_services_listen_on_loopback_only(local_stack):
    from platform_core.seaweed import all_ports

    ports = set(all_ports()) | {settings.MLFLOW_PORT.get()}
    found = listening_addresses(ports)
    assert settings.S3_PORT.get() in found and settings.MLFLOW_PORT.get() in found
    assert all(addresses <= LOOPBACK for addresses in found.values()), found


def test_health_checks_pass_on_the_running_stack_and_name_bad_credentials(local_stack, monkeypatch):
    from platform_core import health
    from platform_core.errors import ConfigError

    health.require_mlflow()
    health.require_s3()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(ConfigError, match="rejected the credentials"):
        health.require_s3()


def test_serving_a_missing_bundle_names_the_fix(local_stack):
    from inference_service.rollout.revisions import download
    from platform_core.errors import PlatformError

    with pytest.raises(PlatformError, match="task export"):
        download(f"s3://{settings.BUCKET.get()}/serving/nothing/v1", "nothing", "1")
