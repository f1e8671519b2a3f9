"""The local model server: KServe's ModelServer bound to loopback, run as a background process.

`start_server` downloads the model with KServe's own storage initializer (the code an InferenceService runs
for `storageUri`), starts `python -m inference_service.server` detached and waits for v2 readiness;
`platform down` stops it with the rest of the stack.

Written against kserve==0.21.0: the loopback binding relies on ModelServer internals (`_serve`,
`_rest_server`, GRPCServer attributes), so re-verify it when kserve is upgraded.
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import inference_service.kserve_guard  # noqa: F401  (before any kserve import)

# isort: split

import httpx
import kserve
from grpc import aio
from kserve import PredictorConfig
from kserve import logging as kserve_logging
from kserve.constants.constants import MAX_GRPC_MESSAGE_LENGTH
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, UnsupportedProtocol
from kserve.model_server import app as kserve_app
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from inference_service import rest
from inference_service.predictor import XGBoostPredictor
from inference_service.rest import VersionNotServed
from platform_core import settings
from platform_core.errors import PlatformError
from platform_core.stack import MODEL_SERVER


class _LoopbackGRPCServer(GRPCServer):
    """GRPCServer.start() hard-codes "[::]:port"; this re-implements it with a configurable host.

    It also leaves out kserve's LoggingInterceptor, which writes one INFO line per RPC.
    """

    def __init__(self, host: str, *args, versions: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self._host = host
        self._versions = versions

    async def start(self, max_workers: int) -> None:  # max_workers only feeds sync handlers; ours are async
        self._server = aio.server(
            interceptors=(ExceptionToStatusInterceptor(),),
            options=[
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_LENGTH),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_LENGTH),
            ],
        )
        servicer = _VersionedServicer(self._data_plane, self._model_repository_extension, versions=self._versions)
        add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self._host}:{self._port}")  # raises if the port is taken
        await self._server.start()
        await self._server.wait_for_termination()


class _VersionedServicer(InferenceServicer):
    """KServe's gRPC servicer ignores `model_version`; here it must name the served version (or be empty)."""

    def __init__(self, *args, versions: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self._versions = versions

    def _check(self, name: str, version: str) -> None:
        served = self._versions.get(name)
        if version and served is not None and version != served:
            raise VersionNotServed(name, version, served)

    async def ModelInfer(self, request, context):  # noqa: N802 - gRPC method name
        self._check(request.model_name, request.model_version)
        return await super().ModelInfer(request, context)

    async def ModelMetadata(self, request, context):  # noqa: N802
        self._check(request.name, request.version)
        return await super().ModelMetadata(request, context)

    async def ModelReady(self, request, context):  # noqa: N802
        self._check(request.name, request.version)
        return await super().ModelReady(request, context)


class RepositoryApiDisabled(NotImplementedError):
    """Raised by the model repository endpoints while they are off (REST 501, gRPC UNIMPLEMENTED)."""

    def __init__(self):
        self.reason = "the model repository extension (load/unload) is disabled; set PLATFORM_SERVE_REPOSITORY_API"
        super().__init__(self.reason)


class _DisabledRepository(ModelRepositoryExtension):
    """KServe's repository extension lets any caller unload the served model; off unless a setting enables it.
    Listing the repository (read-only) stays available."""

    async def load(self, model_name: str):
        raise RepositoryApiDisabled()

    async def unload(self, model_name: str):
        raise RepositoryApiDisabled()


class _LoadedDataPlane(DataPlane):
    """Server readiness = every model this server was started with is loaded (stock kserve always says ready)."""

    def __init__(self, model_registry, expected: list[str]):
        super().__init__(model_registry=model_registry)
        self._expected = expected

    async def ready(self) -> bool:
        for name in self._expected:
            if not await self._model_registry.is_model_ready(name):
                return False
        return True


class LoopbackModelServer(kserve.ModelServer):
    """ModelServer whose REST and gRPC listeners bind `host` instead of 0.0.0.0 / [::]."""

    def __init__(self, host: str = "127.0.0.1", enable_grpc: bool = True, repository_api: bool = False, **kwargs):
        # The stock gRPC server is disabled and replaced by _LoopbackGRPCServer in _serve().
        super().__init__(enable_grpc=False, **kwargs)
        self.host = host
        self._loopback_grpc = enable_grpc
        if not repository_api:
            self.model_repository_extension = _DisabledRepository(model_registry=self.registered_models)

    def start(self, models: list[kserve.Model]) -> None:
        # Built here: ModelServer.__init__ made a plain DataPlane and start() hands self.dataplane to the servers.
        self.dataplane = _LoadedDataPlane(self.registered_models, [m.name for m in models])
        # KServe's REST app is a module-level FastAPI app; what we add goes on before it serves.
        self._versions = {m.name: str(getattr(m, "version", "") or "") for m in models}
        rest.extend(kserve_app, self._versions, max_body=settings.SERVE_MAX_REQUEST_MB.get() << 20)
        super().start(models)

    async def _serve(self) -> None:
        # RESTServer passes host="0.0.0.0" to uvicorn.Config, but uvicorn only reads it when the
        # server starts listening, i.e. inside the gather() below, so overriding it here is enough.
        self._rest_server.config.host = self.host
        if self._loopback_grpc:
            # Assigned to _grpc_server so ModelServer.stop() shuts it down on SIGTERM/SIGINT.
            self._grpc_server = _LoopbackGRPCServer(
                self.host,
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={},
                grace_period=self.grace_period,
                versions=self._versions,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        await super()._serve()


class _OneLineRejections(logging.Filter):
    """kserve logs a full traceback for every rejected request; a client's mistake is worth one line."""

    CLIENT_ERRORS = (InvalidInput, ModelNotFound, ModelNotReady, UnsupportedProtocol, NotImplementedError)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.CLIENT_ERRORS):
            record.msg, record.args, record.exc_info = f"rejected request: {type(exc).__name__}: {exc}", (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_log_config() -> dict:
    """kserve's default log config minus per-request lines.

    uvicorn decides per connection whether to access-log via `logging.getLogger("uvicorn.access")
    .hasHandlers()`, so no handlers + no propagation switches the access log off at the source.
    kserve.trace carries the TimingMiddleware line that every REST request emits.
    """
    config = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
    config["loggers"]["uvicorn.access"] = {"handlers": [], "propagate": False}
    config["loggers"]["kserve.trace"]["level"] = "WARNING"
    return config


def serve(
    model_name: str,
    model_dir: str | Path,
    version: str | None,
    http_port: int,
    grpc_port: int | None,
    host: str = "127.0.0.1",
    grace_period: int = 5,
) -> None:
    """Load the model and block serving it until SIGTERM/SIGINT. grpc_port=None disables gRPC."""
    # Configured before ModelServer exists: it only sets up logging when the kserve logger has no handlers.
    kserve_logging.configure_logging(_quiet_log_config())
    logging.getLogger(kserve_logging.KSERVE_LOGGER_NAME).addFilter(_OneLineRejections())
    model = XGBoostPredictor(model_name, model_dir, version)
    model.load()
    # Every argument is explicit: ModelServer's defaults are taken from the import-time argv parse.
    # workers must stay 1 since the multi-process REST server does not go through _serve().
    server = LoopbackModelServer(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port or 0,
        enable_grpc=grpc_port is not None,
        repository_api=settings.SERVE_REPOSITORY_API.get(),
        workers=1,
        max_threads=1,
        max_asyncio_workers=2,
        enable_docs_url=False,
        enable_latency_logging=False,
        access_log_format=None,
        event_loop="auto",
        timeout_keep_alive=65,
        grace_period=grace_period,
        predictor_config=PredictorConfig(predictor_host=None),
        ssl_certfile=None,
        ssl_keyfile=None,
    )
    server.start([model])


@dataclass
class Served:
    """What the local server answers with."""

    model_name: str
    version: str
    storage_uri: str
    rest_url: str
    grpc_target: str
    pid: int


def download(storage_uri: str, model_name: str, version: str) -> Path:
    """Fetch a serving bundle with KServe's storage initializer into the state dir."""
    from kserve_storage import Storage  # heavy import (cloud SDKs); only this step needs it

    target = settings.state_dir() / "serving" / model_name / version
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    settings.apply_client_env()
    try:
        Storage.download(storage_uri, str(target))
    except RuntimeError as exc:  # kserve_storage's way of saying "nothing there"
        raise PlatformError(f"no serving bundle at {storage_uri}: {exc}", "run `task export`") from exc
    return target


def start_server(model_name: str, version: str, storage_uri: str) -> Served:
    """(Re)start the local server on `storage_uri`; returns once v2 readiness answers."""
    model_dir = download(storage_uri, model_name, version)
    MODEL_SERVER.stop()  # one model server at a time locally; a new version replaces the old
    host, http_port, grpc_port = settings.HOST.get(), settings.SERVE_HTTP_PORT.get(), settings.SERVE_GRPC_PORT.get()
    argv = [
        sys.executable, "-m", "inference_service.server", "--model-name", model_name, "--model-dir", str(model_dir),
        "--version", version, "--host", host, "--http-port", str(http_port), "--grpc-port", str(grpc_port),
    ]  # fmt: skip
    # One OpenMP thread: the server shares two cores with its clients.
    pid = MODEL_SERVER.start(argv, env={"OMP_NUM_THREADS": "1"})
    url = settings.serve_url()
    MODEL_SERVER.wait_ready(
        lambda: httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=2).status_code == 200,
        timeout=120,
        what=f"model server for {model_name}",
    )
    return Served(model_name, version, storage_uri, url, f"{host}:{grpc_port}", pid)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve one XGBoost model over Open Inference Protocol v2")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--version", default=None)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--host", default=settings.HOST.get())
    args = parser.parse_args()
    serve(args.model_name, args.model_dir, args.version, args.http_port, args.grpc_port, host=args.host)


if __name__ == "__main__":
    main()
