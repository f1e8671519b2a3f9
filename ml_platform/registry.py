"""Model registry operations, the one module gate and rollout both use: the search's best run, registered
versions with their lineage, aliases and their moves (`promote`).

`platform gate` (ml_platform.gate) is how a model reaches `challenger`, `promote` how it reaches `champion`.
`register_champion` (`platform register`) is the manual override that skips the gate; use it only to repair a
registry by hand.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient

from platform_core import settings
from platform_core.bundle import CHALLENGER, CHAMPION, PREVIOUS
from platform_core.errors import PlatformError


@dataclass
class Registered:
    model_name: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    holdout_accuracy: float | None


def latest_best_run_id(experiment_name: str) -> str:
    """Best trial of the newest finished search (the parent run carries it as the `best_run_id` tag)."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    runs = (
        mlflow.search_runs(
            [experiment.experiment_id],
            filter_string="tags.stage = 'tune' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if experiment
        else []
    )
    if not runs or "best_run_id" not in runs[0].data.tags:
        raise PlatformError(f"no finished search in experiment {experiment_name!r}", "run `task tune` first")
    return runs[0].data.tags["best_run_id"]


def model_uri_of_run(run_id: str) -> str:
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    models = mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    if not models:
        raise PlatformError(f"run {run_id} logged no model", "pick a finished trial run")
    return models[0].model_uri


def client() -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()


def version_by_alias(model_name: str, alias: str):
    """The ModelVersion an alias points at, or None (also when the model is not registered yet)."""
    try:
        return client().get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.get_http_status_code() in (401, 403):  # not "no alias": the registry refused us
            raise PlatformError(f"the MLflow registry refused the login ({exc.get_http_status_code()})",
                                "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD") from exc  # fmt: skip
        return None


def find_or_register(model_name: str, run_id: str, tags: dict[str, str]):
    """The version registered from `run_id` (gating a run twice reuses it), else a new one. Lineage tags are
    copied onto the version so it is traceable without its run."""
    existing = client().search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if existing:
        return min(existing, key=lambda v: int(v.version))
    # register_model prints "Created version ..." to stderr (through a stream that follows sys.stderr): the
    # stage's own result line says it.
    with contextlib.redirect_stderr(io.StringIO()):
        return mlflow.register_model(model_uri_of_run(run_id), model_name, tags={"source_run_id": run_id, **tags})


def register_champion(model_name: str, run_id: str | None = None) -> Registered:
    mlflow.set_tracking_uri(settings.tracking_uri())
    run_id = run_id or latest_best_run_id(settings.EXPERIMENT.get())
    model_uri = model_uri_of_run(run_id)
    client = MlflowClient()
    run = client.get_run(run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k.startswith("lineage.")}
    version = find_or_register(model_name, run_id, lineage)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    client.set_model_version_tag(model_name, version.version, "gate", "bypassed (platform register)")
    return Registered(model_name, str(version.version), CHAMPION, run_id, model_uri, None)


def resolve_alias(model_name: str, alias: str) -> str:
    """Version number an alias points at, or a clear error naming the fix."""
    mlflow.set_tracking_uri(settings.tracking_uri())
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException as exc:
        raise PlatformError(f"model {model_name!r} has no version with alias {alias!r}", "run `task gate`") from exc


def promote(model_name: str | None = None) -> tuple[str, str | None]:
    """Move `champion` to the gated `challenger`; the old champion becomes `previous`. Returns (new, previous)."""
    model_name = model_name or settings.MODEL_NAME.get()
    challenger = version_by_alias(model_name, CHALLENGER)
    if challenger is None:
        raise PlatformError(f"model {model_name!r} has no @{CHALLENGER}", "run `task gate` first")
    champion = version_by_alias(model_name, CHAMPION)
    # Already the champion: nothing moves (its gate tag may since say `unchanged`, from gating it again).
    if champion is not None and champion.version == challenger.version:
        return str(challenger.version), None
    if challenger.tags.get("gate") != "passed":
        raise PlatformError(f"{model_name} v{challenger.version} did not pass the gate", "run `task gate`")
    registry = client()
    if champion is not None:
        registry.set_registered_model_alias(model_name, PREVIOUS, champion.version)
    registry.set_registered_model_alias(model_name, CHAMPION, challenger.version)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    registry.set_model_version_tag(model_name, challenger.version, "promoted_at", now)
    return str(challenger.version), str(champion.version) if champion is not None else None


def promote_if_challenger(model_name: str, version: str) -> str | None:
    """`promote` when `version` is the gated @challenger (what a finished canary of it means); else None: any
    other version going to 100% is a serving decision that leaves the registry alone."""
    challenger = version_by_alias(model_name, CHALLENGER)
    if challenger is None or str(challenger.version) != str(version):
        return None
    return promote(model_name)[0]
