"""`platform` CLI: one command per stage. Task targets, the KFP components and the notebooks call the same
stage functions these commands call; `demo` chains the commands themselves.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from platform_core import health, settings, stack
from platform_core.errors import PlatformError
from platform_core.progress import console, step

# The CLI draws its own progress and one result line per stage; MLflow's INFO lines and per-download bars
# only bury them. Its run/experiment URLs stay: they are the quickest way into the UI.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)

# pretty_exceptions off: PlatformError is shown by main() as one line; anything else is a bug worth a traceback.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)


def done(message: str) -> None:
    console.print(f"[green]✔[/green] {message}")


def connect(s3: bool = False) -> None:
    """Export endpoints and keys for MLflow/boto3/KServe, then fail fast if a needed service is down."""
    settings.apply_client_env()
    health.require_mlflow()
    if s3:
        health.require_s3()


@app.command()
def up() -> list[stack.ServiceStatus]:
    """Start the local stack (SeaweedFS S3 + MLflow) on 127.0.0.1; a no-op for what already runs."""
    with step("Starting SeaweedFS (S3) and the MLflow server"):
        services = stack.up()
    done(f"stack up: S3 {settings.s3_endpoint()} (bucket {settings.BUCKET.get()}), MLflow {settings.tracking_uri()}")
    return services


@app.command()
def down() -> None:
    """Stop what `up` and `serve` started (by PID file)."""
    stopped = stack.down()
    done(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """Show which local services run, where."""
    table = Table("service", "state", "pid", "url")
    for s in stack.status():
        table.add_row(s.name, "[green]running[/]" if s.running else "[dim]stopped[/]", str(s.pid or "-"), s.url)
    console.print(table)
    console.print(f"state dir: {settings.state_dir()}")


@app.command("settings")
def show_settings() -> None:
    """List every setting (environment variable), its current value and what it is for."""
    table = Table("variable", "value", "meaning")
    for name, value, doc in settings.describe():
        table.add_row(name, value, doc)
    console.print(table)


@app.command()
def raw(path: Annotated[str | None, typer.Option(help="Where to write the raw file")] = None) -> Path:
    """Write the raw iris file (UCI iris.data format) from the copy scikit-learn ships."""
    from data_platform.raw import write_raw_iris

    written = write_raw_iris(path or settings.raw_path())
    done(f"raw data: {written}")
    return written


@app.command()
def etl(
    raw_path: Annotated[str | None, typer.Option(help="Raw input file (default: PLATFORM_RAW_PATH)")] = None,
    lake: Annotated[str | None, typer.Option(help="Lake root (default: PLATFORM_LAKE_DIR)")] = None,
):
    """Spark ETL: raw file -> curated Parquet + _manifest.json; bad rows quarantined with a reason."""
    from data_platform.etl import run_etl

    raw_path = raw_path or settings.raw_path()
    if raw_path == settings.raw_path() and not Path(raw_path).exists():
        raw(raw_path)
    with step("Spark ETL (local[*])"):
        result = run_etl(raw_path, lake or settings.lake_dir())
    done(
        f"ETL: {result.rows_in} rows in, {result.rows_curated} curated, {result.rows_quarantined} quarantined "
        f"-> {result.curated_path} ({result.seconds}s)"
    )
    return result


@app.command()
def tune(
    samples: Annotated[int | None, typer.Option(help="Trials (default: PLATFORM_TUNE_SAMPLES)")] = None,
    max_rounds: Annotated[int | None, typer.Option(help="Max boosting rounds per trial")] = None,
):
    """Ray Tune search over XGBoost hyperparameters; every trial is an MLflow run with its model on S3."""
    from ml_platform.tune import run_tune

    connect()
    result = run_tune(
        settings.lake_dir(),
        num_samples=samples or settings.TUNE_SAMPLES.get(),
        max_rounds=max_rounds or settings.TUNE_MAX_ROUNDS.get(),
        seed=settings.SEED.get(),
        holdout_fraction=settings.HOLDOUT_FRACTION.get(),
    )
    done(
        f"tune: {result.trials} trials, best run {result.best_run_id} "
        f"(valid logloss {result.best_metrics['valid_mlogloss']:.4f}, "
        f"holdout accuracy {result.best_metrics['holdout_accuracy']:.3f}) ({result.seconds}s)"
    )
    return result


@app.command()
def register(run_id: Annotated[str | None, typer.Option(help="Trial run (default: best of last search)")] = None):
    """Register the best trial's model and point the `champion` alias at it."""
    from ml_platform.registry import register_champion

    connect()
    result = register_champion(settings.MODEL_NAME.get(), run_id)
    done(f"registered {result.model_name} v{result.version} as @{result.alias} (run {result.run_id})")
    return result


@app.command()
def export(alias: Annotated[str, typer.Option(help="Registry alias to export")] = "champion"):
    """Export a registered version to S3 as a KServe xgboost serving bundle (one model file)."""
    from ml_platform.export import export_model

    connect(s3=True)
    result = export_model(settings.MODEL_NAME.get(), alias)
    done(f"exported {result.model_name} v{result.version} -> {result.storage_uri}")
    return result


@app.command()
def serve(alias: Annotated[str, typer.Option(help="Registry alias to serve")] = "champion"):
    """Serve an exported version with KServe's ModelServer (v2 REST + gRPC) on 127.0.0.1."""
    from inference_service.server import start_server
    from ml_platform.export import serving_uri
    from ml_platform.registry import resolve_alias

    connect(s3=True)
    name = settings.MODEL_NAME.get()
    version = resolve_alias(name, alias)
    with step(f"Starting the model server for {name} v{version}"):
        served = start_server(name, version, serving_uri(name, version))
    done(f"serving {served.model_name} v{served.version}: REST {served.rest_url}, gRPC {served.grpc_target}")
    return served


@app.command()
def predict(
    request_file: Annotated[
        Path | None, typer.Argument(help="v2 request JSON (default: inference_service/input.json)")
    ] = None,
    grpc: Annotated[bool, typer.Option(help="Send over gRPC instead of REST")] = False,
):
    """Send a v2 inference request to the served model and print the answer."""
    from data_platform.raw import SPECIES
    from inference_service.client import (
        DEFAULT_INPUT,
        features_of,
        infer_grpc,
        infer_rest,
        load_request,
        predicted_classes,
    )

    request = load_request(request_file or DEFAULT_INPUT)
    name = settings.MODEL_NAME.get()
    if grpc:
        response = infer_grpc(f"{settings.HOST.get()}:{settings.SERVE_GRPC_PORT.get()}", name, features_of(request))
    else:
        response = infer_rest(settings.serve_url(), name, request)
    console.print_json(json.dumps(response))
    rows = predicted_classes(response, SPECIES)
    done(
        f"{response['model_name']} v{response.get('model_version')} predicts: "
        + ", ".join(f"{c} ({p:.2f})" for c, p in rows)
    )
    return response


@app.command()
def demo() -> None:
    """Everything, end to end: up, ETL, tune, register, export, serve, predict. Leaves the stack running."""
    timings: dict[str, float] = {}
    for command in (up, etl, tune, register, export, serve, predict):
        console.rule(f"[bold]{command.__name__}")
        start = time.monotonic()
        response = command()
        timings[command.__name__] = round(time.monotonic() - start, 1)
    (settings.state_dir() / "demo-timings.json").write_text(json.dumps(timings, indent=2))
    console.rule("[bold green]demo finished")
    table = Table("stage", "seconds")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("[bold]total", f"[bold]{sum(timings.values()):.1f}")
    console.print(table)
    console.print(
        f"Model [bold]{response['model_name']}[/] version [bold]{response['model_version']}[/] is serving v2 at "
        f"{settings.serve_url()}/v2/models/{response['model_name']}/infer\n"
        f"MLflow UI: {settings.tracking_uri()}   state dir: {settings.state_dir()}\n"
        "Try `task predict`, `task status`; stop everything with `task down`."
    )


def main() -> None:
    """Entry point: user-caused errors end in one line with the fix, not a traceback."""
    try:
        app(standalone_mode=False)
    except PlatformError as exc:
        console.print(f"[red]✘ {exc.message}[/red]" + (f"\n  fix: {exc.hint}" if exc.hint else ""))
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code and message
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
