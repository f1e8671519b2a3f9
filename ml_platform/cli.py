"""ML platform commands of the `platform` CLI: search, registry and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from platform_core import health, settings
from platform_core.bundle import BUNDLE_FILE, CHAMPION, MODEL_FILE
from platform_core.progress import console, done, new_app, step, styled

app = new_app(__doc__)


@app.command()
def tune(
    samples: Annotated[int | None, typer.Option(help="Trials (default: budget.samples of the config)")] = None,
    max_rounds: Annotated[int | None, typer.Option(help="Max boosting rounds per trial")] = None,
    config: Annotated[Path | None, typer.Option(help="Search config YAML (default: ml_platform/search.yaml)")] = None,
    resume: Annotated[bool, typer.Option(help="Finish the interrupted search (same parent run)")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the search (default: the config's / PLATFORM_SEED)")] = None,
):
    """Ray Tune search (ASHA + seeded Optuna) over XGBoost hyperparameters; trials are MLflow runs."""
    from ml_platform import search_config

    # A bad config or a stopped stack fails before Ray and MLflow are imported (~15 s on 2 cores).
    loaded = None if resume else search_config.load(config)
    if loaded is not None and seed is not None:
        loaded = loaded.with_overrides(seed=seed)
    health.connect()
    from ml_platform.tune import run_tune

    result = run_tune(settings.lake_dir(), loaded, samples=samples, max_rounds=max_rounds, resume=resume)
    done(
        f"tune{' (resumed)' if result.resumed else ''}: {result.trials} trials ({result.finished} finished, "
        f"{result.stopped} stopped early, {result.failed} failed); best run {result.best_run_id} (valid logloss "
        f"{result.best_metrics['valid_mlogloss']:.4f}, valid accuracy {result.best_metrics['valid_accuracy']:.3f}) "
        f"({result.seconds}s)"
    )
    return result


@app.command()
def gate(
    promote: Annotated[bool, typer.Option(help="On pass, also move @champion to it (old one -> @previous)")] = False,
    run_id: Annotated[str | None, typer.Option(help="Challenger trial run (default: best of the last search)")] = None,
    rules: Annotated[Path | None, typer.Option(help="Gate rules YAML (default: ml_platform/gate.yaml)")] = None,
):
    """Challenger (the search's best) vs @champion on the same test rows; pass -> @challenger, fail -> exit 1."""
    from rich.table import Table

    from ml_platform.gate import load_rules, run_gate

    loaded = load_rules(rules)  # a bad rules file fails before any service is touched
    health.connect()
    report = run_gate(settings.MODEL_NAME.get(), run_id, loaded, promote_on_pass=promote)
    table = Table("metric (test split)", "champion", "challenger", title=f"gate: {report.outcome}")
    champion = (report.champion or {}).get("metrics", {})
    for metric, value in report.challenger["metrics"].items():
        table.add_row(metric, f"{champion[metric]:.4f}" if metric in champion else "-", f"{value:.4f}")
    console.print(table)
    for rule in report.rules:
        verdict = styled("pass", "green") if rule["passed"] else styled("FAIL", "red")
        console.print("  ", verdict, f"  {rule['rule']}: {rule['detail']}", sep="")
    report.raise_if_rejected()
    version = report.challenger["version"]
    where = "@challenger"
    if report.promoted:
        where = "@champion" + (f" (v{report.previous} -> @previous)" if report.previous else "")
    if report.outcome == "unchanged":
        done(f"gate: v{version} already is the champion; no alias moved (report {report.report_path})")
    else:
        done(f"gate passed: {report.model_name} v{version} -> {where} (report {report.report_path})")
    return report


@app.command()
def promote():
    """Move @champion to the gated @challenger; the old champion becomes @previous."""
    from ml_platform.registry import promote as promote_challenger

    health.connect()
    new, previous = promote_challenger(settings.MODEL_NAME.get())
    done(
        f"promoted {settings.MODEL_NAME.get()} v{new} to @champion"
        + (f" (v{previous} -> @previous)" if previous else "")
    )
    return new, previous


@app.command()
def register(run_id: Annotated[str | None, typer.Option(help="Trial run (default: best of last search)")] = None):
    """Manual override: register a trial's model as @champion WITHOUT the gate (repairs only; use `gate`)."""
    health.connect()  # before the registry's imports (mlflow): a stopped stack fails in a second
    from ml_platform.registry import register_champion

    result = register_champion(settings.MODEL_NAME.get(), run_id)
    done(f"registered {result.model_name} v{result.version} as @{result.alias} (run {result.run_id})")
    return result


@app.command()
def export(alias: Annotated[str, typer.Option(help="Registry alias to export")] = CHAMPION):
    """Export a registered version to S3 as a KServe xgboost serving bundle (one model file)."""
    from ml_platform.export import export_model

    health.connect(s3=True)
    result = export_model(settings.MODEL_NAME.get(), alias)
    done(f"exported {result.model_name} v{result.version} -> {result.storage_uri} ({MODEL_FILE} + {BUNDLE_FILE})")
    return result


@app.command()
def notebook():
    """JupyterLab on 127.0.0.1 (token auth) on ml_platform/notebooks/, kernels with the stack's env; `down` stops it."""
    from ml_platform.notebook_server import start_notebook

    health.connect()
    with step("Starting JupyterLab"):
        server = start_notebook()
    state = "already running" if server.already_running else f"pid {server.pid}"
    done(f"JupyterLab ({state}): {server.url}  — stop with `task down`")
    return server
