"""Attacks on the local stack that must fail: every SeaweedFS port and socket, plaintext gRPC, the tracking
server without a login. Each test also shows the legitimate path still works, so a refusal is not just a
dead port."""

import os
import subprocess
import sys

import boto3
import botocore.exceptions
import grpc
import httpx
import psutil
import pytest

from platform_core import seaweed, settings, storage
from platform_core.stack import SEAWEED

pytestmark = pytest.mark.integration

SECRET = b"TOP-SECRET-MODEL-BYTES"
SECRET_KEY = "serving/attack-target/v1/model.ubj"
# Data paths of every SeaweedFS HTTP API: S3 (bucket/key), filer (/buckets/...), master (file ids), volume.
PROBES = [
    ("GET", f"/mlops/{SECRET_KEY}"),
    ("GET", f"/buckets/mlops/{SECRET_KEY}"),
    ("GET", "/buckets/mlops/serving/"),
    ("GET", "/mlops?list-type=2"),
    ("GET", "/"),
    ("PUT", "/buckets/mlops/serving/attack-target/v1/evil.ubj"),
    ("PUT", "/mlops/serving/attack-target/v1/evil.ubj"),
    ("POST", "/buckets/mlops/serving/attack-target/v1/"),
    ("GET", "/dir/assign"),
    ("POST", "/dir/assign"),
    ("GET", "/dir/lookup?volumeId=1"),
    ("GET", "/1,01637037d6"),
]
# The master's web UI ("/" on the master port) shows cluster layout, no data: left visible on purpose.
ALLOWED_PAGES = {("master", "/")}


@pytest.fixture(scope="module")
def secret_object(local_stack):
    storage.client().put_object(Bucket=settings.BUCKET.get(), Key=SECRET_KEY, Body=SECRET)
    return SECRET_KEY


def seaweed_listening_ports() -> set[int]:
    group = SEAWEED.pid()
    pids = {p.pid for p in psutil.process_iter() if _pgid(p.pid) == group}
    return {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in pids}


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_seaweedfs_listens_only_on_the_planned_ports(local_stack):
    found = seaweed_listening_ports()
    assert settings.S3_PORT.get() in found
    assert found <= set(seaweed.all_ports()), f"unplanned ports: {found - set(seaweed.all_ports())}"


def test_no_seaweedfs_http_port_serves_or_accepts_data_anonymously(secret_object):
    names = {port: name for name, port in seaweed.ports().items()}
    for port in sorted(seaweed_listening_ports()):
        for method, path in PROBES:
            if (names.get(port), path) in ALLOWED_PAGES:
                continue
            try:
                response = httpx.request(method, f"http://127.0.0.1:{port}{path}", content=b"evil", timeout=5)
            except httpx.HTTPError:
                continue  # not HTTP at all (a TLS-only gRPC port): nothing served
            assert response.status_code >= 400, (port, method, path, response.status_code, response.text[:200])
            assert SECRET not in response.content
    # Nothing got written by any of those attempts.
    keys = storage.list_keys(f"s3://{settings.BUCKET.get()}/serving/attack-target/")
    assert keys == [SECRET_KEY]
    assert storage.client().get_object(Bucket=settings.BUCKET.get(), Key=SECRET_KEY)["Body"].read() == SECRET


def test_seaweedfs_local_sockets_are_owner_only(local_stack):
    sockets = list((settings.state_dir() / "run").glob("weed-*.sock"))
    assert sockets, "expected the filer/S3 local sockets in the state dir (not in /tmp)"
    assert all(oct(s.stat().st_mode & 0o777) == "0o700" for s in sockets)


@pytest.mark.parametrize(
    "method",
    ["/messaging_pb.SeaweedS3IamCache/PutIdentity", "/filer_pb.SeaweedFiler/ListEntries", "/master_pb.Seaweed/Assign"],
)
def test_every_grpc_port_refuses_plaintext_calls(local_stack, method):
    grpc_ports = [p for p in seaweed_listening_ports() if p >= settings.S3_PORT.get() + seaweed.GRPC_OFFSET]
    assert len(grpc_ports) >= 4
    for port in grpc_ports:
        assert seaweed.plaintext_grpc_status(port, method) == grpc.StatusCode.UNAVAILABLE, port


def test_grpc_answers_a_client_with_the_platform_certificate(local_stack):
    """The positive control for the test above: with mutual TLS the same port does answer."""
    conf = seaweed.config_dir()
    creds = grpc.ssl_channel_credentials(
        root_certificates=(conf / "ca.crt").read_bytes(),
        private_key=(conf / "node.key").read_bytes(),
        certificate_chain=(conf / "node.crt").read_bytes(),
    )
    port = settings.S3_PORT.get() + seaweed.GRPC_OFFSET
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        call = channel.unary_unary(
            "/filer_pb.SeaweedFiler/NoSuchMethod", request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # reached the server, past the TLS handshake


def test_an_identity_pushed_over_plaintext_grpc_gives_no_access(local_stack):
    port = settings.S3_PORT.get() + seaweed.GRPC_OFFSET
    assert seaweed.plaintext_grpc_status(port) == grpc.StatusCode.UNAVAILABLE
    intruder = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint(),
        aws_access_key_id="INTRUDER",
        aws_secret_access_key="intruder-secret",
        region_name="us-east-1",
    )
    with pytest.raises(botocore.exceptions.ClientError):
        intruder.list_objects_v2(Bucket=settings.BUCKET.get())


def _weed_shell(command: str, *flags: str) -> str:
    """Output of one `weed shell` command; a shell that cannot connect keeps retrying, so it gets 20 s."""
    ports = seaweed.ports()
    argv = [os.path.join(os.path.dirname(sys.executable), "weed"), *flags, "shell",
            f"-master=127.0.0.1:{ports['master']}", f"-filer=127.0.0.1:{ports['filer']}"]  # fmt: skip
    try:
        result = subprocess.run(
            argv, input=command + "\n", capture_output=True, text=True, timeout=20, cwd=settings.state_dir() / "run"
        )
    except subprocess.TimeoutExpired as exc:
        return f"{exc.stdout or ''}{exc.stderr or ''}"
    return result.stdout + result.stderr


def test_weed_shell_without_the_certificates_reads_nothing(secret_object):
    listing = "fs.ls /buckets/mlops/serving/attack-target/v1"
    assert "model.ubj" not in _weed_shell(listing)
    assert "model.ubj" in _weed_shell(listing, f"-config_dir={seaweed.config_dir()}")  # positive control


def test_up_refuses_a_seaweedfs_that_fell_back_to_plaintext_grpc(tmp_path):
    """SeaweedFS silently serves plaintext gRPC when it cannot read its certificates: `up` must notice, refuse,
    and leave nothing running."""
    from tests.conftest import free_port_block, quiet_port

    base = free_port_block(5, offset=seaweed.GRPC_OFFSET)
    env = {
        **os.environ,
        "PLATFORM_STATE_DIR": str(tmp_path),
        "PLATFORM_S3_PORT": str(base),
        "PLATFORM_MLFLOW_PORT": str(quiet_port()),
    }  # `up` starts MLflow too before it checks SeaweedFS
    env.pop("AWS_ACCESS_KEY_ID", None), env.pop("AWS_SECRET_ACCESS_KEY", None)
    subprocess.run(
        [sys.executable, "-c", "from platform_core import seaweed; seaweed.ensure_security_config()"],
        env=env, check=True, timeout=60,
    )  # fmt: skip
    # What SeaweedFS does when it cannot use its certificates: gRPC in plaintext, everything else working.
    toml = tmp_path / "seaweedfs-conf" / "security.toml"
    toml.write_text(toml.read_text().split("[grpc]")[0])
    result = subprocess.run(
        [sys.executable, "-m", "platform_cli", "up"], env=env, capture_output=True, text=True, timeout=180
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "accepted a plaintext gRPC call" in output and "Traceback" not in output
    assert not (tmp_path / "run" / "seaweedfs.pid").exists()
    assert not any(c.laddr.port == base for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN)


def test_secrets_are_owner_only(local_stack):
    for path in (settings.keys_file(), settings.mlflow_credentials_file(), seaweed.config_dir() / "security.toml",
                 seaweed.config_dir() / "node.key"):  # fmt: skip
        assert oct(path.stat().st_mode & 0o777) == "0o600", path


def test_mlflow_refuses_anonymous_and_wrong_logins(local_stack):
    url = settings.tracking_uri()
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=5"
    alias = f"{url}/api/2.0/mlflow/registered-models/alias"
    move = {"name": settings.MODEL_NAME.get(), "alias": "champion", "version": "1"}
    assert httpx.get(search, timeout=10).status_code == 401
    assert httpx.post(alias, json=move, timeout=10).status_code == 401
    assert httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "evil"}, timeout=10).status_code == 401
    user, password = settings.mlflow_credentials()
    assert httpx.get(search, auth=(user, password + "x"), timeout=10).status_code == 401
    assert httpx.get(search, auth=(user, password), timeout=10).status_code == 200  # positive control
    # The login cache (PLATFORM_MLFLOW_AUTH_CACHE_S) holds the verified login: near misses of it stay refused.
    for near in (password[:-1], password.upper(), password + " ", ""):
        assert httpx.get(search, auth=(user, near), timeout=10).status_code == 401, near
    assert httpx.get(search, auth=("someone-else", password), timeout=10).status_code == 401


def test_a_refused_registry_login_is_an_error_not_a_missing_alias(local_stack, monkeypatch):
    from ml_platform import registry
    from platform_core.errors import PlatformError

    user, password = settings.mlflow_credentials()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password + "x")
    with pytest.raises(PlatformError, match="refused the login"):
        registry.version_by_alias(settings.MODEL_NAME.get(), "champion")


def test_mlflow_credentials_command_prints_the_login(local_stack):
    result = subprocess.run(
        [sys.executable, "-m", "platform_cli", "mlflow-credentials"], capture_output=True, text=True, timeout=60
    )
    user, password = settings.mlflow_credentials()
    output = result.stdout + result.stderr
    assert result.returncode == 0 and user in output and password in output
