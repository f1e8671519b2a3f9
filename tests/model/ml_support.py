"""Shared by the ML platform tests: a published dataset in the session lake and an isolated experiment/model
name per module (so the end-to-end demo later in the session starts from an empty registry)."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def isolated_names(prefix: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLATFORM_EXPERIMENT", f"{prefix}-experiment")
        mp.setenv("PLATFORM_MODEL_NAME", f"{prefix}-model")
        yield


def publish_dataset() -> None:
    """The ETL through its CLI function (idempotent: the same input reuses its version)."""
    from data_platform import cli as data_cli

    data_cli.etl()


def write_config(path, **changes) -> str:
    """A copy of ml_platform/search.yaml with some keys replaced (dotted keys for nested ones)."""
    import yaml

    from platform_core import settings

    raw = yaml.safe_load(settings.SEARCH_CONFIG.get().read_text())
    for dotted, value in changes.items():
        node, *rest = dotted.split(".")
        if rest:
            raw[node][rest[0]] = value
        else:
            raw[node] = value
    path.write_text(yaml.safe_dump(raw))
    return str(path)
