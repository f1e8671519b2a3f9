"""One revision's model server: KServe's ModelServer bound to loopback (`python -m inference_service.runtime.server`).

`inference_service.rollout.revisions` starts one per revision, detached, behind the serving proxy; `platform down`
stops them with the rest of the stack.

The loopback binding and the platform's middleware rely on ModelServer internals; they all sit in
`inference_service.runtime.kserve_seam`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import socket
import time
from pathlib import Path

from platform_core import lean_imports

if __name__ == "__main__":  # a model server's own process imports what a predictor pod has, no scikit-learn
    lean_imports.skip(lean_imports.NOT_IN_THE_SERVING_IMAGE)

# isort: split

from inference_service.runtime import kserve_seam  # before any other kserve import

# isort: split

import kserve
import uvloop
from kserve import PredictorConfig
from kserve import logging as kserve_logging
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, UnsupportedProtocol
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from inference_service.runtime import metrics, rest
from inference_service.runtime.bounded import message as bounded
from inference_service.runtime.predictor import XGBoostPredictor
from inference_service.runtime.rest import VersionNotServed
from inference_service.runtime.revision_http import HEADER as REVISION_HEADER
from inference_service.runtime.revision_http import Faults, Revision
from platform_core import settings


class _VersionedServicer(InferenceServicer):
    """KServe's gRPC servicer ignores `model_version`; here it must name the served version (or be empty).
    As a revision it also names itself in the initial metadata and counts its inference calls."""

    def __init__(self, *args, versions: dict[str, str], revision: str, models: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._versions = versions
        self._revision = revision
        self._models = models or {}

    def _check(self, name: str, version: str) -> None:
        served = self._versions.get(name)
        if version and served is not None and version != served:
            raise VersionNotServed(name, version, served)

    async def ModelInfer(self, request, context):  # noqa: N802 - gRPC method name
        self._check(request.model_name, request.model_version)
        if not self._revision:
            return await super().ModelInfer(request, context)
        await context.send_initial_metadata(((REVISION_HEADER.decode(), self._revision),))
        started, code = time.perf_counter(), "5xx"
        try:
            answer = await super().ModelInfer(request, context)
            code = "2xx"
            return answer
        except (InvalidInput, ModelNotFound):
            code = "4xx"
            raise
        finally:
            metrics.REVISION_REQUESTS.labels(self._revision, code).inc()
            metrics.REVISION_SECONDS.labels(self._revision).observe(time.perf_counter() - started)

    async def ModelMetadata(self, request, context):  # noqa: N802
        self._check(request.name, request.version)
        answer = await super().ModelMetadata(request, context)
        model = self._models.get(request.name)
        if model is not None and hasattr(model, "metadata"):  # gRPC's message has no properties; REST has them
            described = model.metadata()
            answer.versions.extend(described["versions"])
            answer.platform = described["platform"]
        return answer

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


class LoadedDataPlane(DataPlane):
    """Server readiness = every model this server was started with is loaded (stock kserve always says ready).
    Server metadata lists the repository extension only when it is on (stock kserve always lists it)."""

    def __init__(self, model_registry, expected: list[str], repository_api: bool = False):
        super().__init__(model_registry=model_registry)
        self._expected = expected
        self._repository_api = repository_api

    def metadata(self) -> dict:
        described = super().metadata()
        return {**described, "extensions": ["model_repository_extension"] if self._repository_api else []}

    async def ready(self) -> bool:
        for name in self._expected:
            if not await self.model_registry.is_model_ready(name):
                return False
        return True


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    """The REST listening socket. Worker processes of one server each bind their own with SO_REUSEPORT on the
    same loopback address; the kernel spreads connections over them."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))  # raises if the port is taken (by anything but a sibling worker)
    return sock


class LoopbackModelServer(kserve_seam.SocketModelServer):
    """ModelServer whose REST and gRPC listeners bind `host` instead of 0.0.0.0 / [::]."""

    def __init__(
        self, host: str = "127.0.0.1", enable_grpc: bool = True, repository_api: bool = False, revision: str = "",
        faults: Faults | None = None, reuse_port: bool = False, **kwargs,
    ):  # fmt: skip
        # The stock gRPC server is disabled; grpc_server() builds the loopback one.
        super().__init__(enable_grpc=False, **kwargs)
        self.host = host
        self.revision, self.faults = revision, faults or Faults()
        self.reuse_port = reuse_port
        self._loopback_grpc = enable_grpc
        self.repository_api = repository_api
        if not repository_api:
            self.model_repository_extension = _DisabledRepository(model_registry=self.registered_models)

    def start(self, models: list[kserve.Model]) -> None:
        # Built here: ModelServer.__init__ made a plain DataPlane and start() hands self.dataplane to the servers.
        self.dataplane = LoadedDataPlane(self.registered_models, [m.name for m in models], self.repository_api)
        self._models = models
        self._versions = {m.name: str(getattr(m, "version", "") or "") for m in models}
        super().start(models)

    def rest_socket(self) -> socket.socket:
        return _listen(self.host, self.http_port, self.reuse_port)

    def extend_app(self, app):
        served = rest.extend(app, self._models, max_body=settings.SERVE_MAX_REQUEST_MB.get() << 20,
                             body_timeout=settings.SERVE_BODY_TIMEOUT_S.get())  # fmt: skip
        if self.revision:  # outermost: it sees every answer, the platform's own 4xx included
            served = Revision(served, revision=self.revision, faults=self.faults)
        return served

    def grpc_server(self) -> kserve_seam.LoopbackGRPCServer | None:
        if not self._loopback_grpc:
            return None

        def servicer(data_plane, repository):
            return _VersionedServicer(data_plane, repository, versions=self._versions, revision=self.revision,
                                      models={m.name: m for m in self._models})  # fmt: skip

        return kserve_seam.LoopbackGRPCServer(
            self.host, self.grpc_port, self.dataplane, self.model_repository_extension, servicer=servicer,
            reuse_port=self.reuse_port, grace_period=self.grace_period,
        )  # fmt: skip


class _OneLineRejections(logging.Filter):
    """kserve logs a full traceback for every rejected request; a client's mistake is worth one line."""

    CLIENT_ERRORS = (InvalidInput, ModelNotFound, ModelNotReady, UnsupportedProtocol, NotImplementedError)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.CLIENT_ERRORS):
            record.msg, record.args = f"rejected request: {type(exc).__name__}: {bounded(str(exc))}", ()
            record.exc_info = None
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
    revision: str = "",
    reuse_port: bool = False,
) -> None:
    """Load the model and block serving it until SIGTERM/SIGINT. grpc_port=None disables gRPC.
    reuse_port: one of several worker processes on the same ports (`inference_service.runtime.workers`)."""
    # kserve runs its servers with asyncio.run(), so uvicorn's own loop choice never applies: set it here.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # ModelServer.start() asks for the current loop first
    # Configured before ModelServer exists: it only sets up logging when the kserve logger has no handlers.
    kserve_logging.configure_logging(_quiet_log_config())
    logging.getLogger(kserve_logging.KSERVE_LOGGER_NAME).addFilter(_OneLineRejections())
    model = XGBoostPredictor(model_name, model_dir, version)
    model.load()
    # Every argument is explicit: ModelServer's defaults are taken from the import-time argv parse.
    # workers=1: KServe's multi-process REST server re-imports its app in each child, without the platform's
    # middleware or the loopback binding; several workers are separate processes (inference_service.runtime.workers).
    server = LoopbackModelServer(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port or 0,
        enable_grpc=grpc_port is not None,
        repository_api=settings.SERVE_REPOSITORY_API.get(),
        revision=revision,
        faults=Faults.parse(settings.SERVE_FAULTS.get()),
        reuse_port=reuse_port,
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


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve one XGBoost model over Open Inference Protocol v2")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--version", default=None)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--host", default=settings.HOST.get())
    parser.add_argument("--revision", default=metrics.REVISION, help="Revision name to answer as (default: K_REVISION)")
    parser.add_argument("--reuse-port", action="store_true", help="Share the ports with sibling worker processes")
    args = parser.parse_args()
    serve(
        args.model_name, args.model_dir, args.version, args.http_port, args.grpc_port, host=args.host,
        revision=args.revision, reuse_port=args.reuse_port,
    )  # fmt: skip


if __name__ == "__main__":
    main()
