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
from platform_core.progress import console, new_app, styled

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
    """Entry point: user-caused errors end in one line with the fix, anything else in one line naming the log
    that holds its traceback."""
    try:
        app(standalone_mode=False)
    except PlatformError as exc:
        console.print(
            styled(f"✘ {exc.message}", "red"), *([f"\n  fix: {exc.hint}"] if exc.hint else []), sep="", soft_wrap=True
        )
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code and message
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if (lost := health.diagnose(exc)) is not None:  # a backend died while the stage ran
            console.print(
                styled(f"✘ {lost.message} (lost during the command)", "red"),
                f"\n  fix: {lost.hint}",
                sep="",
                soft_wrap=True,
            )
            sys.exit(1)
        # The last resort: a bug, not a user's mistake. One line here, the traceback in the log to report.
        log = _log_traceback()
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        hint = f"\n  the traceback is in {log}; please report it with that file"
        console.print(styled(f"✘ unexpected {type(exc).__name__}: {detail}", "red"), hint, sep="", soft_wrap=True)
        sys.exit(1)


def _log_traceback() -> str:
    import time
    import traceback

    from platform_core import settings

    try:
        path = settings.state_dir() / "logs" / "cli-errors.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} platform {' '.join(sys.argv[1:])}\n")
            log.write(traceback.format_exc())
        return str(path)
    except OSError:  # no writable state dir: the traceback is still worth more than nothing
        traceback.print_exc()
        return "the output above"


if __name__ == "__main__":
    main()
