"""ML platform commands of the `platform` CLI: search, registry and export."""

from __future__ import annotations

from typing import Annotated

import typer

from platform_core import health, settings
from platform_core.progress import done, new_app

app = new_app(__doc__)


@app.command()
def tune(
    samples: Annotated[int | None, typer.Option(help="Trials (default: PLATFORM_TUNE_SAMPLES)")] = None,
    max_rounds: Annotated[int | None, typer.Option(help="Max boosting rounds per trial")] = None,
):
    """Ray Tune search over XGBoost hyperparameters; every trial is an MLflow run with its model on S3."""
    from ml_platform.tune import run_tune

    health.connect()
    result = run_tune(
        settings.lake_dir(),
        num_samples=samples or settings.TUNE_SAMPLES.get(),
        max_rounds=max_rounds or settings.TUNE_MAX_ROUNDS.get(),
        seed=settings.SEED.get(),
    )
    done(
        f"tune: {result.trials} trials, best run {result.best_run_id} "
        f"(valid logloss {result.best_metrics['valid_mlogloss']:.4f}, "
        f"test accuracy {result.best_metrics['test_accuracy']:.3f}) ({result.seconds}s)"
    )
    return result


@app.command()
def register(run_id: Annotated[str | None, typer.Option(help="Trial run (default: best of last search)")] = None):
    """Register the best trial's model and point the `champion` alias at it."""
    from ml_platform.registry import register_champion

    health.connect()
    result = register_champion(settings.MODEL_NAME.get(), run_id)
    done(f"registered {result.model_name} v{result.version} as @{result.alias} (run {result.run_id})")
    return result


@app.command()
def export(alias: Annotated[str, typer.Option(help="Registry alias to export")] = "champion"):
    """Export a registered version to S3 as a KServe xgboost serving bundle (one model file)."""
    from ml_platform.export import export_model

    health.connect(s3=True)
    result = export_model(settings.MODEL_NAME.get(), alias)
    done(f"exported {result.model_name} v{result.version} -> {result.storage_uri}")
    return result
