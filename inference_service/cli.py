"""Inference service commands of the `platform` CLI: serve a registered version, send v2 requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from platform_core import health, settings
from platform_core.progress import console, done, new_app, step

app = new_app(__doc__)


@app.command()
def serve(alias: Annotated[str, typer.Option(help="Registry alias to serve")] = "champion"):
    """Serve an exported version with KServe's ModelServer (v2 REST + gRPC) on 127.0.0.1."""
    from inference_service.server import start_server
    from ml_platform.export import serving_uri
    from ml_platform.registry import resolve_alias

    health.connect(s3=True)
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
    rows = predicted_classes(response)  # class names come from the served bundle, never from code
    done(
        f"{response['model_name']} v{response.get('model_version')} predicts: "
        + ", ".join(f"{c} ({p:.2f})" for c, p in rows)
    )
    return response
