"""Object-store helpers (boto3 against any S3 endpoint: SeaweedFS locally, IONOS/AWS on a cluster)."""

from __future__ import annotations

from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from platform_core import settings


def client():
    key, secret = settings.s3_credentials()
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint(),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        # Path-style: SeaweedFS and most non-AWS endpoints have no per-bucket DNS.
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": settings.HTTP_RETRIES.get() + 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=settings.HTTP_TIMEOUT.get(),
        ),
    )


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def ensure_bucket(name: str) -> None:
    s3 = client()
    try:
        s3.head_bucket(Bucket=name)
    except botocore.exceptions.ClientError:
        s3.create_bucket(Bucket=name)


def upload_dir(local: Path, uri: str) -> list[str]:
    """Upload every file under `local` to `uri` (an s3:// prefix); return the object keys written."""
    bucket, prefix = split_uri(uri)
    s3, keys = client(), []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def list_keys(uri: str) -> list[str]:
    bucket, prefix = split_uri(uri)
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
