"""`platform` CLI: one command per stage. Task targets, the KFP components and the notebooks call the same
stage functions these commands call; `demo` chains the commands themselves.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import typer
from rich.table import Table

from data_platform import cli as data_cli
from inference_service import cli as serving_cli
from ml_platform import cli as ml_cli
from platform_core import cli as stack_cli
from platform_core import health, settings
from platform_core.errors import PlatformError
from platform_core.progress import console, new_app

# The CLI draws its own progress and one result line per stage; MLflow's INFO lines, run-URL prints and
# per-download bars only bury them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported (lazily, by a stage)
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
logging.getLogger("mlflow").setLevel(logging.WARNING)

app = new_app(__doc__)
for sub_app in (stack_cli.app, data_cli.app, ml_cli.app, serving_cli.app):
    app.add_typer(sub_app)


def _second_round() -> None:
    """A second, longer search (PLATFORM_DEMO_SECOND_SEED, 4x the rounds) through the gate; a passing challenger
    goes out as a 10% canary that the automatic analysis promotes or rolls back. A rejected one ends the demo with
    the first model serving."""
    from inference_service.cli import canary_auto, canary_start
    from ml_platform.gate import GateRejected
    from ml_platform.search_config import load

    first = load(None).with_overrides()
    ml_cli.tune(seed=settings.DEMO_SECOND_SEED.get(), max_rounds=first.max_rounds * 4)  # more rounds per trial
    try:
        ml_cli.gate(promote=False)
    except GateRejected as exc:
        console.print(f"[yellow]the second model did not pass the gate ({exc.message}); the first keeps serving[/]")
        return
    canary_start(alias="challenger", percent=10)
    canary_auto(load=True)


@app.command()
def demo() -> None:
    """End to end: up, ETL, tune, gate, export, serve v1; a second search, gate, canary at 10%, automatic analysis
    (promote or roll back), predict. Leaves the stack running."""
    stages = (("up", stack_cli.up), ("etl", data_cli.etl), ("tune", ml_cli.tune),
              ("gate", lambda: ml_cli.gate(promote=True)), ("export", ml_cli.export), ("serve", serving_cli.serve),
              ("predict", serving_cli.predict), ("canary", _second_round),
              ("predict", serving_cli.predict))  # fmt: skip
    timings: dict[str, float] = {}
    for name, command in stages:
        console.rule(f"[bold]{name}")
        start = time.monotonic()
        response = command()
        timings[name if name not in timings else f"{name} (after canary)"] = round(time.monotonic() - start, 1)
    (settings.state_dir() / "demo-timings.json").write_text(json.dumps(timings, indent=2))
    console.rule("[bold green]demo finished")
    table = Table("stage", "seconds")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("[bold]total", f"[bold]{sum(timings.values()):.1f}")
    console.print(table)
    console.print(
        f"Model [bold]{response['model_name']}[/] version [bold]{response['model_version']}[/] is serving v2 at "
        f"{settings.serve_url()}/v2/models/{response['model_name']}/infer (through the serving proxy)\n"
        f"MLflow UI: {settings.tracking_uri()} (log in with `task mlflow:credentials`)   "
        f"state dir: {settings.state_dir()}\n"
        "Try `task predict`, `task canary:status`, `task status`; stop everything with `task down`."
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
        if (lost := health.diagnose(exc)) is not None:  # a backend died while the stage ran
            console.print(f"[red]✘ {lost.message} (lost during the command)[/red]\n  fix: {lost.hint}")
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
