"""Stage chains, written once here on top of every layer from the stages' public functions: the Kubeflow
pipeline's rollout task runs `roll_out` (locally through kfp.local, on a cluster in its pod)."""

from __future__ import annotations

from collections.abc import Callable

from platform_core import health


def roll_out(version: str, percent: int = 10, progress: Callable[[str], None] = print) -> str:
    """A gated version into service. Nothing served yet: it becomes @champion and is served at 100% (`served`).
    Otherwise it goes out as a canary at `percent` that the automatic analysis promotes or rolls back
    (`promoted` / `rolled back`). Serving and the canary export its bundle first when it is not on S3."""
    from inference_service.rollout import analysis, canary
    from ml_platform import registry

    health.connect(s3=True)
    if canary.backend().current() is None:
        registry.promote()
        canary.serve(version)
        return "served"
    canary.start(version, percent)
    return analysis.run(progress=progress).verdict
