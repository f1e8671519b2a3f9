"""Fail fast when a stage's services are not there.

Without these checks MLflow's client retries for minutes (7 retries, exponential backoff) and boto3 ends in a
traceback; a user should instead see in a second which service is missing and how to start it.
"""

from __future__ import annotations

import botocore.exceptions
import httpx

from platform_core import settings, storage
from platform_core.errors import ConfigError, ServiceUnavailable


def _fix(setting: str) -> str:
    return "run `task up`" if settings.profile() == "local" else f"check {setting}"


def mlflow_answers(timeout: float = 3.0) -> bool:
    try:
        return httpx.get(f"{settings.tracking_uri()}/health", timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


def require_mlflow() -> None:
    url = settings.tracking_uri()
    if not mlflow_answers():
        raise ServiceUnavailable(f"the MLflow tracking server does not answer at {url}", _fix("PLATFORM_TRACKING_URI"))


def require_s3() -> None:
    bucket = settings.BUCKET.get()
    try:
        storage.client().head_bucket(Bucket=bucket)
    except botocore.exceptions.EndpointConnectionError as exc:
        raise ServiceUnavailable(
            f"the S3 endpoint does not answer at {settings.s3_endpoint()}", _fix("PLATFORM_S3_ENDPOINT")
        ) from exc
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            raise ConfigError(
                f"S3 at {settings.s3_endpoint()} rejected the credentials", "check AWS_ACCESS_KEY_ID/SECRET"
            ) from exc
        raise ConfigError(f"bucket {bucket!r} does not exist", "run `task up` or set PLATFORM_BUCKET") from exc


def connect(s3: bool = False) -> None:
    """Fail fast if a needed service is down, then export endpoints and logins for MLflow/boto3/KServe."""
    require_mlflow()
    settings.apply_client_env()
    if s3:
        require_s3()


_CLIENT_LIBRARIES = ("mlflow", "botocore", "boto3", "urllib3", "requests", "httpx", "s3transfer", "kserve_storage")


def diagnose(exc: BaseException) -> ServiceUnavailable | None:
    """For an error raised by an MLflow/S3 client library mid-stage: the lost service, if one is down now.

    Stages check their services before they start (`connect`); this covers a backend that dies while a stage
    runs, so the user sees which service went away and how to bring it back instead of a client traceback.
    """
    chain = [exc, exc.__cause__, exc.__context__]
    if not any(e is not None and type(e).__module__.startswith(_CLIENT_LIBRARIES) for e in chain):
        return None
    return lost_backend()


def lost_backend() -> ServiceUnavailable | None:
    """The first of MLflow and S3 that does not answer now, or None when both do."""
    try:
        require_mlflow()
        require_s3()
    except ServiceUnavailable as lost:
        return lost
    except Exception:  # noqa: BLE001 - a diagnosis must not replace the original error
        return None
    return None
