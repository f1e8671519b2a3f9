"""The whole flow as one Kubeflow Pipelines pipeline: ETL -> tune -> gate -> (passed) export -> rollout.

Each component is a thin lightweight component over the stage function the CLI and the task targets call (no
copied logic, never a CLI command):
the component imports the platform package installed in its image (`PLATFORM_IMAGE`) and passes what the stage
produced on as kfp artifacts with metadata (dataset version and content hash, search and best run, model version,
gate decision). The gate is a condition: the rollout runs only when it passed, the other branch records why.
The rollout serves the model at 100% when nothing is served yet, else starts a 10% canary and lets the automatic
analysis promote or roll it back.

    task pipeline:compile    -> manifests/pipelines/kfserve-bundle.yaml (what KFP runs on a cluster)
    task pipeline:run        -> the same pipeline locally with kfp.local against the local stack
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as objects, not strings.
import os
from typing import NamedTuple

from kfp import dsl, kubernetes

from platform_core import settings

# The components' image on a cluster (docker/Dockerfile: the locked dependencies + this package); a pinned tag.
IMAGE = settings.IMAGE.get()
PIPELINE_NAME = "kfserve-bundle"

# On a cluster every task gets the deployment's settings and credentials as environment (kfp-kubernetes), from the
# objects manifests/deploy.sh mirrors into the KFP namespace: the platform-settings ConfigMap (every key its builds
# share; tests/cluster/test_pipeline_cluster.py checks this list against each built ConfigMap both ways), MLflow's
# client credentials, and the S3 keys where the cloud uses static keys (optional: on AWS, IRSA on pipeline-runner).
SETTINGS_CONFIG_MAP = "platform-settings"
SETTINGS_KEYS = (
    "PLATFORM_PROFILE", "PLATFORM_MODEL_NAME", "PLATFORM_EXPERIMENT", "PLATFORM_TRACKING_URI", "PLATFORM_LAKE_DIR",
    "PLATFORM_BUCKET", "PLATFORM_S3_ENDPOINT", "AWS_DEFAULT_REGION", "PLATFORM_K8S_NAMESPACE", "PLATFORM_K8S_S3_HOST",
    "PLATFORM_PROMETHEUS_URL", "PLATFORM_KFP_NAMESPACE", "PLATFORM_IMAGE", "PLATFORM_SERVING_IMAGE",
    "PLATFORM_SPARK_IMAGE", "PLATFORM_MLFLOW_IMAGE",
)  # fmt: skip
SECRETS = (
    ("mlflow-auth", {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                     "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}, False),
    ("s3-credentials", {"accessKey": "AWS_ACCESS_KEY_ID", "secretKey": "AWS_SECRET_ACCESS_KEY"}, True),
)  # fmt: skip


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def etl(dataset: dsl.Output[dsl.Dataset]) -> NamedTuple("Curated", [("version", int), ("content_hash", str)]):
    """Spark ETL of PLATFORM_DATASET: a versioned curated dataset (unchanged input reuses its version). Never
    cached by kfp (it has no inputs to key on); the ETL's own content hash makes a re-run on the same raw files
    reuse the version."""
    import json
    from collections import namedtuple

    from data_platform.etl import run_etl

    result = run_etl()
    dataset.metadata.update({"dataset": result.dataset, "version": result.version, "reused": result.reused,
                             "content_hash": result.content_hash, "rows_curated": result.rows_curated,
                             "rows_quarantined": result.rows_quarantined})  # fmt: skip
    with open(dataset.path, "w") as out:
        json.dump({**dataset.metadata, "path": result.path}, out)
    return namedtuple("Curated", ["version", "content_hash"])(result.version, result.content_hash)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune(dataset_version: int, content_hash: str, samples: int, max_rounds: int, seed: int,
         model: dsl.Output[dsl.Model]):  # fmt: skip
    """Ray Tune search on the published dataset; every trial an MLflow run; the best trial is the output.
    Its inputs are parameters (the dataset's content hash, not its artifact, whose URI is new every run): the
    same data and search settings give the same cache key, locally and on KFP, and the search is reused."""
    import json

    from ml_platform.tune import run_tune
    from platform_core import health

    health.connect()
    result = run_tune(samples=samples or None, max_rounds=max_rounds or None, seed=seed if seed >= 0 else None)
    model.metadata.update({"search_run": result.parent_run_id, "run_id": result.best_run_id,
                           "valid_mlogloss": result.best_metrics.get("valid_mlogloss"),
                           "dataset_version": dataset_version, "dataset_hash": content_hash})  # fmt: skip
    with open(model.path, "w") as out:
        json.dump({**model.metadata, "model_uri": result.best_model_uri}, out)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(model: dsl.Input[dsl.Model], gated: dsl.Output[dsl.Model]) -> str:
    """Challenger vs @champion on the test split; returns `passed` / `rejected` / `unchanged`, never fails on a
    rejection (the pipeline branches on it)."""
    import json

    from ml_platform.gate import run_gate
    from platform_core import health

    health.connect()
    report = run_gate(run_id=model.metadata["run_id"], promote_on_pass=False)
    failed = report.failed_rule
    gated.metadata.update({"decision": report.outcome, "version": str(report.challenger["version"]),
                           "reason": f"{failed['rule']}: {failed['detail']}" if failed else "",
                           "report": report.report_path})  # fmt: skip
    with open(gated.path, "w") as out:
        json.dump(gated.metadata, out)
    return report.outcome


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def rollout(gated: dsl.Input[dsl.Model], percent: int, bundle: dsl.Output[dsl.Model]) -> str:
    """Export the gated version's serving bundle, then serve it (nothing served yet) or canary it with the
    automatic analysis. Returns `served`, `promoted` or `rolled back`."""
    from orchestration.flows import roll_out
    from platform_core import bundle as serving_bundle
    from platform_core import settings

    version = gated.metadata["version"]
    outcome = roll_out(version, percent)
    uri = serving_bundle.storage_uri(settings.MODEL_NAME.get(), version)
    bundle.metadata.update({"version": version, "storage_uri": uri, "outcome": outcome})
    with open(bundle.path, "w") as out:
        out.write(outcome)
    return outcome


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def record_rejection(gated: dsl.Input[dsl.Model]) -> str:
    """The rejected branch: why the challenger was not rolled out (the gate's failed rule and its report)."""
    reason = f"v{gated.metadata['version']} not rolled out: {gated.metadata['decision']} ({gated.metadata['reason']})"
    print(reason)
    return reason


def _on_cluster(task):
    """The deployment's settings and credentials as the task's environment (ignored by kfp.local, whose tasks
    inherit this process's settings)."""
    kubernetes.use_config_map_as_env(task, SETTINGS_CONFIG_MAP, {key: key for key in SETTINGS_KEYS})
    for name, keys, optional in SECRETS:
        kubernetes.use_secret_as_env(task, name, keys, optional=optional)
    return task


@dsl.pipeline(name=PIPELINE_NAME, description="Raw data -> curated dataset -> tuned XGBoost -> gate -> canary")
def flow(samples: int = 0, max_rounds: int = 0, seed: int = -1, canary_percent: int = 10):
    """samples / max_rounds 0 and seed -1 mean: the search config's own values."""
    # Cached: only the search (its key is the dataset's content hash and the search settings). The ETL checks
    # its input itself; the gate and the rollout depend on the registry and the served model, not on inputs.
    curated = _on_cluster(etl().set_caching_options(False))
    searched = _on_cluster(tune(dataset_version=curated.outputs["version"],
                                content_hash=curated.outputs["content_hash"],
                                samples=samples, max_rounds=max_rounds, seed=seed))  # fmt: skip
    decided = _on_cluster(gate(model=searched.outputs["model"]).set_caching_options(False))
    with dsl.If(decided.outputs["Output"] == "passed", name="gate-passed"):
        _on_cluster(rollout(gated=decided.outputs["gated"], percent=canary_percent).set_caching_options(False))
    with dsl.Else(name="gate-did-not-pass"):
        record_rejection(gated=decided.outputs["gated"]).set_caching_options(False)


COMPILED = "manifests/pipelines/kfserve-bundle.yaml"


def compile_pipeline(path: str | None = None) -> str:
    """Write the pipeline's IR YAML (what a KFP server runs); returns its path."""
    from kfp import compiler

    target = path or str(settings.REPO_ROOT / COMPILED)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = f"{target}.partial.yaml"  # kfp names the format by the suffix
    compiler.Compiler().compile(flow, partial)
    os.replace(partial, target)  # a reader never sees half a pipeline
    return target


def run_local(**arguments) -> dict:
    """Run the pipeline here with kfp.local against the local stack (orchestration.pipeline_local); returns the
    tasks by name with their status and time."""
    from orchestration import pipeline_local

    return pipeline_local.run(flow, **arguments)


def submit(arguments: dict | None = None) -> str:
    """Submit the compiled pipeline to the KFP endpoint of the settings; returns the run id."""
    import kfp

    from platform_core.errors import ConfigError, ServiceUnavailable

    host = settings.KFP_HOST.get()
    if not host:
        raise ConfigError("no Kubeflow Pipelines endpoint configured", "set PLATFORM_KFP_HOST (e.g. via port-forward)")
    try:
        client = kfp.Client(host=host)
        run = client.create_run_from_pipeline_package(compile_pipeline(), arguments=arguments or {})
    except Exception as exc:  # noqa: BLE001 - kfp raises urllib3/ApiException/ValueError for an absent endpoint
        raise ServiceUnavailable(
            f"Kubeflow Pipelines at {host} did not accept the run: {exc}", "check PLATFORM_KFP_HOST"
        ) from exc
    return run.run_id
