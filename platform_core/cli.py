"""Stack commands of the `platform` CLI: the local services' lifecycle and the settings registry."""

from __future__ import annotations

from rich.table import Table

from platform_core import settings, stack
from platform_core.progress import console, done, new_app, step, styled

app = new_app(__doc__)


@app.command()
def up() -> list[stack.ServiceStatus]:
    """Start the local stack (SeaweedFS S3 + MLflow) on 127.0.0.1; a no-op for what already runs."""
    with step("Starting SeaweedFS (S3) and the MLflow server"):
        services = stack.up()
    up_done()
    return services


def up_done() -> None:
    """`up`'s result line (the demo prints it when it has waited for a stack started alongside the ETL)."""
    done(
        f"stack up: S3 {settings.s3_endpoint()} (bucket {settings.BUCKET.get()}), MLflow {settings.tracking_uri()} "
        "(login: `task mlflow:credentials`)"
    )


@app.command()
def down() -> None:
    """Stop what `up` and `serve` started (by PID file)."""
    stopped = stack.down()
    done(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """Show which local services run, where."""
    table = Table("service", "state", "pid", "url")
    styles = {"running": styled("running", "green"), "stopped": styled("stopped", "dim"),
              "orphaned": styled("orphaned (task down)", "red")}  # fmt: skip
    for s in stack.status():
        table.add_row(s.name, styles[s.state], str(s.pid or "-"), s.url)
    console.print(table)
    console.print(f"state dir: {settings.state_dir()}")


@app.command("settings")
def show_settings() -> None:
    """List every setting (environment variable), its current value and what it is for."""
    table = Table("variable", "value", "meaning")
    for name, value, doc in settings.describe():
        table.add_row(name, value, doc)
    console.print(table)


@app.command("mlflow-credentials")
def mlflow_credentials() -> None:
    """Print the MLflow UI login (generated into the state dir on first `up`)."""
    user, password = settings.mlflow_credentials()
    console.print(f"MLflow UI: {settings.tracking_uri()}\n  username: {user}\n  password: {password}")
