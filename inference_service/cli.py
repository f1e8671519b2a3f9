"""Inference service commands of the `platform` CLI: serve a registered version, send v2 requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from platform_core import health, settings
from platform_core.bundle import CHALLENGER, CHAMPION
from platform_core.progress import console, done, new_app, step, styled

app = new_app(__doc__)


canary_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Canary rollout of the InferenceService: start, set, promote, rollback, status, auto.",
)
app.add_typer(canary_app, name="canary")


ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="InferenceService (= registered model) to act on [default: PLATFORM_MODEL_NAME]"),
]


def _version_of(alias: str, model: str) -> str:
    from ml_platform.registry import resolve_alias

    if settings.profile() == "local":
        health.connect(s3=True)
    return resolve_alias(model, alias)


def _show(status: dict, kubectl: str) -> None:
    console.print(styled(f"kubectl equivalent: {kubectl}", "dim"))
    for entry in status.get("traffic", []):
        tag = f" (tag {entry['tag']})" if entry.get("tag") else ""
        console.print(f"  {entry['revisionName']}: {entry['percent']}%{tag}")


@app.command()
def serve(alias: Annotated[str, typer.Option(help="Registry alias to serve")] = CHAMPION, model: ModelOption = None):
    """Serve an alias's version of a model at 100% behind the serving proxy (a new revision; the old one drains and
    stops); other models keep serving. Its serving bundle is exported first when it is not on S3 yet."""
    from inference_service.rollout import canary
    from inference_service.rollout.proxy import model_host

    name = model or settings.MODEL_NAME.get()
    version = _version_of(alias, name)
    with step(f"Rolling out {name} v{version}"):
        status, change = canary.serve(version, name)
    _show(status, change.kubectl())
    done(f"serving {name} v{version} as {status['latestRolledoutRevision']}: REST {settings.serve_url()}"
         f"/v2/models/{name}, gRPC {settings.HOST.get()}:{settings.SERVE_GRPC_PORT.get()} "
         f"(authority {model_host(name)})")  # fmt: skip
    return status


@canary_app.command("start")
def canary_start(
    alias: Annotated[str, typer.Option(help="Registry alias of the version to try")] = CHALLENGER,
    percent: Annotated[int, typer.Option(help="Share of the traffic the canary gets")] = 10,
    model: ModelOption = None,
):
    """A new revision of the alias's version next to the model's served one, with PERCENT of its traffic."""
    from inference_service.rollout import canary

    name = model or settings.MODEL_NAME.get()
    version = _version_of(alias, name)
    with step(f"Starting a canary revision of {name} v{version} at {percent}%"):
        status, change = canary.start(version, percent, name)
    _show(status, change.kubectl())
    done(f"canary {status['latestCreatedRevision']} (v{version}) takes {percent}% of the traffic")
    return status


@canary_app.command("set")
def canary_set(
    percent: Annotated[int, typer.Argument(help="The canary's new share of the traffic (0..100)")],
    model: ModelOption = None,
):
    """Give the model's canary PERCENT of its traffic (0 = roll back)."""
    from inference_service.rollout import canary

    status, change = canary.set_weight(percent, model)
    _show(status, change.kubectl())
    done(f"canary at {percent}%")
    return status


@canary_app.command("promote")
def canary_promote(model: ModelOption = None):
    """The model's canary takes all its traffic; @champion moves to its version when it is the gated @challenger."""
    from inference_service.rollout import canary

    with step(f"Promoting the canary of {model or settings.MODEL_NAME.get()}"):
        status, change, champion = canary.promote(model)
    _show(status, change.kubectl())
    registry = f"; @champion is now v{champion}" if champion else "; registry unchanged (canary is not @challenger)"
    done(f"promoted {status['latestRolledoutRevision']} to 100%{registry}")
    return status


@canary_app.command("rollback")
def canary_rollback(model: ModelOption = None):
    """All of the model's traffic back to its stable revision; the canary stops after its drain. The registry is
    untouched."""
    from inference_service.rollout import canary

    with step(f"Rolling back the canary of {model or settings.MODEL_NAME.get()}"):
        status, change = canary.rollback(model)
    _show(status, change.kubectl())
    done(f"rolled back: {status['latestRolledoutRevision']} takes 100%")
    return status


@canary_app.command("status")
def canary_status(model: Annotated[str | None, typer.Option("--model", help="Only this model")] = None):
    """Every served model (or one): revisions, versions, state, traffic, and per revision: requests, error rate,
    p50/p95 latency."""
    from rich.table import Table

    from inference_service.rollout import canary
    from inference_service.rollout.revision_metrics import revision_stats

    found = {model: canary.status(model)} if model else canary.statuses()
    if not found:
        console.print("no model is served; run `task serve`")
    for name, status in found.items():
        if not status.get("revisions"):
            console.print(f"{name}: not served (`task serve -- --model {name}`)")
            continue
        percents = {t["revisionName"]: t["percent"] for t in status.get("traffic", [])}
        prefix = f"{name}-predictor-"
        table = Table(f"revision ({prefix}…)", "version", "state", "traffic", "requests", "errors", "p50 ms",
                      "p95 ms", title=name)  # fmt: skip
        for rev in status.get("revisions", []):
            stats = revision_stats(rev) if rev.get("state") in ("running", "orphaned") else None
            summary = stats.summary() if stats else {}
            rate = summary.get("success_rate")
            table.add_row(
                rev["name"].removeprefix(prefix), str(rev["version"]), rev.get("state", "-"),
                f"{percents.get(rev['name'], 0)}%", str(summary.get("requests", "-")),
                "-" if rate is None else f"{1 - rate:.1%}", str(summary.get("p50_ms", "-")),
                str(summary.get("p95_ms", "-")),
            )  # fmt: skip
        console.print(table)
        console.print(styled(f"kubectl equivalent: {canary.kubectl_get(name)}", "dim"))
    return found


@canary_app.command("auto")
def canary_auto(
    load: Annotated[bool, typer.Option(help="Top up quiet steps with bounded loopback load")] = True,
    model: ModelOption = None,
):
    """Metric-gated rollout of the model's canary: step weights, compare canary with stable, promote or roll back;
    writes a report."""
    from inference_service.rollout import analysis

    policy = analysis.Policy.from_settings(load=load)
    console.print(
        f"steps {policy.steps}%, {policy.interval_s:g}s each, rollback after {policy.threshold} failed checks"
    )
    report = analysis.run(policy, progress=console.print, model=model)
    if report.verdict == "promoted":
        verdict = "promoted" + (f", @champion is now v{report.champion}" if report.champion else "")
    else:
        verdict = f"rolled back after {report.failed_checks} failed checks; the stable revision serves"
    done(f"canary {report.canary['revision']} (v{report.canary['version']}) {verdict}; report: {report.path}")
    return report


@app.command("render-k8s-isvc")
def render_k8s_isvc():
    """Write the cluster InferenceService (manifests/serving/inferenceservice.yaml) from the settings."""
    from inference_service.rollout import isvc

    isvc.MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    isvc.MANIFEST.write_text(isvc.render_manifest())
    done(f"wrote {isvc.MANIFEST.relative_to(settings.REPO_ROOT)}")


@app.command()
def predict(
    request_file: Annotated[
        Path | None, typer.Argument(help="v2 request JSON (default: inference_service/input.json)")
    ] = None,
    grpc: Annotated[bool, typer.Option(help="Send over gRPC instead of REST")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw v2 answer (one JSON line) instead")] = False,
    model: ModelOption = None,
):
    """Send a v2 inference request to a served model and print one line per row: the predicted class and its
    probability (REST by the model's path, gRPC by the KServe authority `<model>.localhost`)."""
    from inference_service.rollout.proxy import model_host
    from inference_service.runtime.client import (
        DEFAULT_INPUT,
        features_of,
        infer_grpc,
        infer_rest,
        load_request,
        predicted_classes,
    )

    request = load_request(request_file or DEFAULT_INPUT)
    name = model or settings.MODEL_NAME.get()
    if grpc:
        target = f"{settings.HOST.get()}:{settings.SERVE_GRPC_PORT.get()}"
        response = infer_grpc(target, name, features_of(request), authority=model_host(name))
    else:
        response = infer_rest(settings.serve_url(), name, request)
    if as_json:
        # Plain stdout, not the console: the line must stay valid JSON whatever the terminal's width.
        print(json.dumps(response, separators=(",", ":")))
        return response
    rows = predicted_classes(response)  # class names come from the served bundle, never from code
    width = len(str(len(rows) - 1))
    for index, (label, probability) in enumerate(rows):
        console.print(f"row {index:>{width}}: {label} ({probability:.2f})")
    done(f"{response['model_name']} v{response.get('model_version')} answered {len(rows)} rows")
    return response
