import json

import pytest

from platform_core import settings
from platform_core.errors import ConfigError


def test_defaults_are_local_and_loopback(monkeypatch):
    monkeypatch.delenv("PLATFORM_PROFILE", raising=False)
    monkeypatch.delenv("PLATFORM_S3_ENDPOINT", raising=False)
    monkeypatch.setenv("PLATFORM_S3_PORT", "19999")
    assert settings.profile() == "local"
    assert settings.s3_endpoint() == "http://127.0.0.1:19999"


def test_typed_values_are_parsed_and_bad_ones_name_the_variable(monkeypatch):
    monkeypatch.setenv("PLATFORM_TUNE_SAMPLES", "3")
    assert settings.TUNE_SAMPLES.get() == 3
    monkeypatch.setenv("PLATFORM_TUNE_SAMPLES", "three")
    with pytest.raises(ConfigError, match="PLATFORM_TUNE_SAMPLES"):
        settings.TUNE_SAMPLES.get()


def test_profile_is_checked(monkeypatch):
    monkeypatch.setenv("PLATFORM_PROFILE", "laptop")
    with pytest.raises(ConfigError, match="PLATFORM_PROFILE"):
        settings.profile()


def test_cluster_profile_requires_explicit_endpoints(monkeypatch):
    monkeypatch.setenv("PLATFORM_PROFILE", "cluster")
    monkeypatch.delenv("PLATFORM_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("PLATFORM_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match="PLATFORM_S3_ENDPOINT"):
        settings.s3_endpoint()
    with pytest.raises(ConfigError, match="PLATFORM_TRACKING_URI"):
        settings.tracking_uri()
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT", "https://s3.eu-central-1.ionoscloud.com")
    assert settings.s3_endpoint() == "https://s3.eu-central-1.ionoscloud.com"


def test_credentials_prefer_environment_then_local_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ConfigError, match="task up"):
        settings.s3_credentials()
    keys = settings.keys_file()
    keys.parent.mkdir(parents=True)
    keys.write_text(json.dumps({"identities": [{"credentials": [{"accessKey": "A", "secretKey": "B"}]}]}))
    assert settings.s3_credentials() == ("A", "B")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "envkey")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    assert settings.s3_credentials() == ("envkey", "envsecret")


def test_every_setting_is_documented():
    names = [name for name, _, doc in settings.describe() if doc]
    assert len(names) == len(settings.REGISTRY)
    # MLflow's own login variables keep their names, so MLflow clients outside the platform read them too.
    standard = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert all(name.startswith("PLATFORM_") or name in standard for name in names)
