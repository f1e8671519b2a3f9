"""`platform` CLI: mounts each package's commands (one per stage) and turns a PlatformError into one line. Task
targets, the KFP components and the notebooks call the same stage functions these commands call."""

from __future__ import annotations

import logging
import os
import sys

import typer

from data_platform import cli as data_cli
from inference_service import cli as serving_cli
from ml_platform import cli as ml_cli
from orchestration import cli as orchestration_cli
from platform_core import cli as stack_cli
from platform_core import health
from platform_core.errors import PlatformError
from platform_core.progress import console, new_app

# The CLI draws its own progress and one result line per stage; MLflow's INFO lines, run-URL prints and
# per-download bars only bury them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported (lazily, by a stage)
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
logging.getLogger("mlflow").setLevel(logging.WARNING)

app = new_app(__doc__)
for sub_app in (stack_cli.app, data_cli.app, ml_cli.app, serving_cli.app, orchestration_cli.app):
    app.add_typer(sub_app)


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
