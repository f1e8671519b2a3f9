"""Orchestration commands of the `platform` CLI: the demo and the Kubeflow pipeline (compile, run locally, submit)."""

from __future__ import annotations

from typing import Annotated

import typer

from platform_core import health, settings
from platform_core.progress import done, new_app

app = new_app(__doc__)


@app.command()
def demo() -> None:
    """End to end: up, ETL, a quick baseline search, gate, export, serve v1; the full search, gate, canary at 10%,
    automatic analysis (promote or roll back), predict. Leaves the stack running."""
    from orchestration import demo as flow

    flow.run()


@app.command("pipeline-compile")
def pipeline_compile():
    """Compile the Kubeflow pipeline (ETL -> tune -> gate -> rollout) to manifests/pipelines/ (IR YAML)."""
    from orchestration.pipeline import compile_pipeline

    done(f"compiled the pipeline -> {compile_pipeline()}")


@app.command("pipeline-run")
def pipeline_run(
    samples: Annotated[int, typer.Option(help="Trials (0: the search config's)")] = 0,
    max_rounds: Annotated[int, typer.Option(help="Boosting rounds (0: the search config's)")] = 0,
    seed: Annotated[int, typer.Option(help="Search seed (-1: the search config's)")] = -1,
):
    """Run the same pipeline locally with kfp.local against the local stack."""
    from orchestration.pipeline import run_local

    health.connect(s3=True)
    tasks = run_local(samples=samples, max_rounds=max_rounds, seed=seed)
    summary = ", ".join(f"{t.name} {t.status}" for t in tasks.values())
    done(f"pipeline finished: {summary} (outputs under {settings.state_dir() / 'pipelines'})")
    return tasks


@app.command("pipeline-submit")
def pipeline_submit():
    """Submit the compiled pipeline to the Kubeflow Pipelines endpoint PLATFORM_KFP_HOST."""
    from orchestration.pipeline import submit

    done(f"submitted: run {submit()}")
