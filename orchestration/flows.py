"""Stage chains, written once here on top of every layer from the stages' public functions: the Kubeflow
pipeline's rollout task runs `roll_out` (locally through kfp.local, on a cluster in its pod)."""

from __future__ import annotations

from collections.abc import Callable

from platform_core import health, settings


def roll_out(version: str, percent: int = 10, progress: Callable[[str], None] = print, model: str | None = None) -> str:
    """A gated version of `model` (default PLATFORM_MODEL_NAME) into service. Nothing of it served yet: it becomes
    @champion and is served at 100% (`served`), next to any other served model. Otherwise it goes out as a canary
    at `percent` that the automatic analysis promotes or rolls back (`promoted` / `rolled back`). Serving and the
    canary export its bundle first when it is not on S3."""
    from inference_service.rollout import analysis, canary
    from ml_platform import registry

    name = model or settings.MODEL_NAME.get()
    health.connect(s3=True)
    if canary.backend(name).current() is None:
        registry.promote(name)
        canary.serve(version, name)
        return "served"
    canary.start(version, percent, name)
    return analysis.run(progress=progress, model=name).verdict
