"""The local object store: SeaweedFS `weed mini` with no unauthenticated path to data.

Only the S3 port serves data, and only to signed requests with the generated keys. The filer, master and
volume HTTP ports require JWTs signed with keys only the servers know (`security.toml`), WebDAV and the
Iceberg/Lance ports are off, and every gRPC port demands mutual TLS with a certificate from a CA generated
into the state dir. SeaweedFS silently falls back to plaintext gRPC when it cannot read its certificates, so
`verify_grpc_refuses_plaintext` proves the fallback did not happen before anything is stored.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from platform_core import settings
from platform_core.errors import PlatformError
from platform_core.private_files import write_private

# Components besides S3 take the ports after it; each also opens port+10000 for gRPC.
COMPONENTS = ("master", "volume", "filer", "admin")
GRPC_OFFSET = 10000
_GRPC_SECTIONS = ("master", "volume", "filer", "s3", "admin", "worker", "client")


def ports() -> dict[str, int]:
    base = settings.S3_PORT.get()
    return {"s3": base, **{name: base + i + 1 for i, name in enumerate(COMPONENTS)}}


def all_ports() -> tuple[int, ...]:
    http = tuple(ports().values())
    return http + tuple(p + GRPC_OFFSET for p in http)


def config_dir() -> Path:
    return settings.state_dir() / "seaweedfs-conf"


def ensure_keys() -> Path:
    """Generate the local S3 identity once; it never leaves the ignored state dir."""
    path = settings.keys_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = {
            "name": "platform",
            "credentials": [
                {"accessKey": "PLT" + secrets.token_hex(8).upper(), "secretKey": secrets.token_urlsafe(30)}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        write_private(path, json.dumps({"identities": [identity]}, indent=2).encode())
    return path


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """One local CA and one EC P-256 leaf for every component (server and client auth), generated once."""
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "node.crt", directory / "node.key"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform local CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    write_private(ca_path, ca.public_bytes(pem))
    write_private(cert_path, leaf.public_bytes(pem))
    write_private(
        key_path,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return ca_path, cert_path, key_path


def ensure_security_config() -> Path:
    """`security.toml` (0600, absolute paths): JWT keys for master/volume/filer reads and writes, gRPC mTLS."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "security.toml"
    if path.exists():
        return path
    ca, cert, key = _certificates(directory)
    lines = []
    for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"):
        lines += [f"[{section}]", f'key = "{secrets.token_urlsafe(48)}"', "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[filer.expose_directory_metadata]", "enabled = false", ""]
    lines += ["[grpc]", f'ca = "{ca}"', ""]
    for section in _GRPC_SECTIONS:
        lines += [f"[grpc.{section}]", f'cert = "{cert}"', f'key = "{key}"', ""]
    write_private(path, "\n".join(lines).encode())
    return path


def argv(weed: str) -> list[str]:
    host, p = settings.HOST.get(), ports()
    state = settings.state_dir()
    ensure_security_config()
    logs = state / "logs" / "seaweedfs"
    data = state / "s3"
    for directory in (logs, data):
        directory.mkdir(parents=True, exist_ok=True)
    port_flags = [f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3'] + GRPC_OFFSET}"]
    for name in COMPONENTS:
        port_flags += [f"-{name}.port={p[name]}", f"-{name}.port.grpc={p[name] + GRPC_OFFSET}"]
    max_mb = settings.LOG_MAX_MB.get()
    return [
        weed, f"-config_dir={config_dir()}", f"-logdir={logs}", f"-log_max_size_mb={max_mb}",
        f"-log_max_files={settings.LOG_BACKUPS.get()}", "-alsologtostderr=false",
        "mini", f"-dir={data}", f"-ip={host}", f"-ip.bind={host}", *port_flags,
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-disableHttp",
        "-master.telemetry=false", f"-s3.config={ensure_keys()}",
        f"-filer.localSocket={state / 'run' / 'weed-filer.sock'}", f"-s3.localSocket={state / 'run' / 'weed-s3.sock'}",
    ]  # fmt: skip


def plaintext_grpc_status(port: int, method: str = "/messaging_pb.SeaweedS3IamCache/PutIdentity") -> grpc.StatusCode:
    """Status of one unauthenticated, plaintext gRPC call (an empty PutIdentity by default).

    A server that demands mutual TLS never gets to the method: the call ends UNAVAILABLE at the handshake.
    Any other status means the method was reached without credentials.
    """
    with grpc.insecure_channel(f"{settings.HOST.get()}:{port}") as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(b"", timeout=3)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def verify_grpc_refuses_plaintext() -> None:
    port = ports()["s3"] + GRPC_OFFSET
    status = plaintext_grpc_status(port)
    if status != grpc.StatusCode.UNAVAILABLE:
        raise PlatformError(
            f"SeaweedFS accepted a plaintext gRPC call on port {port} ({status.name}): its mutual TLS is not active",
            f"check the certificates in {config_dir()} (delete that dir to regenerate), then `task down && task up`",
        )
