"""Every KServe internal the platform relies on, in one place (verified against kserve==0.21.0).

Import this module before any other kserve module: kserve.model_server runs argparse.parse_known_args() on
sys.argv at import time. Unknown flags are ignored, but prefixes of its own flags are still consumed (`--model`
-> --model_name, `--grpc` is ambiguous) and an ambiguous prefix or a bad value calls sys.exit(2). The server passes
every setting explicitly, so nothing depends on that parse. (Kept out of the package's __init__ so `platform
--help` does not pay kserve's ~10 s import.)

What else is used that KServe does not document, and why (tests/model/test_kserve_seam.py fails with a message
naming the item when an upgrade removes one):
- `ModelServer.servers[0]` is the REST server's start coroutine, queued by `start()`; it binds 0.0.0.0 with no
  option, so it is closed unawaited and replaced by one that serves on a loopback socket.
- `ModelServer._rest_server.create_application()` builds KServe's routes on its module-level FastAPI app,
  `._rest_server.config` is the uvicorn Config it serves (its `app`, KServe's import string, is replaced by the
  platform's ASGI app wrapping KServe's before uvicorn loads it), and `._rest_server._server.serve(sockets=...)`
  is uvicorn's serve on a socket we bound (loopback, SO_REUSEPORT).
- `ModelServer._serve()` gathers `servers`; overridden to swap the REST start and add the loopback gRPC server.
- `GRPCServer.start()` hard-codes "[::]:port"; the subclass re-implements it from `_data_plane`,
  `_model_repository_extension`, `_port` and assigns `_server` (what `stop()` shuts down).
- `ExceptionToStatusInterceptor.handle_exception(ex, request, context, method)` maps errors to gRPC status with
  `context.abort(code, details)`; `BoundedStatusInterceptor` hands it a context whose abort bounds the details.
- `InferInput._raw_data` holds a binary-extension tensor's bytes (what `InferRequest.from_bytes` sets); the fast
  path sets it directly to skip from_bytes' per-value list copy.
"""

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
finally:
    sys.argv = _argv

# isort: split

import socket  # noqa: E402
from collections.abc import Callable  # noqa: E402

from grpc import aio  # noqa: E402
from kserve import InferInput  # noqa: E402
from kserve.constants.constants import MAX_GRPC_MESSAGE_LENGTH  # noqa: E402
from kserve.model_server import app as rest_app  # noqa: E402
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import add_GRPCInferenceServiceServicer_to_server  # noqa: E402
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor  # noqa: E402
from kserve.protocol.grpc.server import GRPCServer  # noqa: E402

VERIFIED_WITH = "0.21.0"
DETAILS_LIMIT = 1024  # characters of a gRPC status message (sent as metadata, whose limit is 8 KiB by default)


class _BoundedAbort:
    """A servicer context whose abort() sends at most DETAILS_LIMIT characters of details; the rest passes."""

    def __init__(self, context):
        self._context = context

    def __getattr__(self, name):
        return getattr(self._context, name)

    async def abort(self, code, details: str = "", trailing_metadata=()):
        if len(details) > DETAILS_LIMIT:
            details = f"{details[:DETAILS_LIMIT]}… ({len(details)} characters in all)"
        await self._context.abort(code, details, trailing_metadata)


class BoundedStatusInterceptor(ExceptionToStatusInterceptor):
    """KServe's error -> status map (INVALID_ARGUMENT for a bad request), with bounded details: an error quoting a
    5 MB input once overflowed the metadata limit and reached the client as RESOURCE_EXHAUSTED."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        await super().handle_exception(ex, request_or_iterator, _BoundedAbort(context), method_name)


def set_raw_tensor(tensor: InferInput, data: bytes) -> None:
    """A binary-extension tensor's bytes, as `InferRequest.from_bytes` stores them (`as_numpy` reads them with
    frombuffer, no Python list in between)."""
    tensor._raw_data = data


class LoopbackGRPCServer(GRPCServer):
    """KServe's GRPCServer on a configurable host, with our servicer and without kserve's LoggingInterceptor
    (one INFO line per RPC). `servicer(data_plane, repository_extension)` builds the servicer."""

    def __init__(self, host: str, port: int, data_plane, repository_extension, *, servicer: Callable,
                 reuse_port: bool, grace_period: int):  # fmt: skip
        super().__init__(port, data_plane, repository_extension, kwargs={}, grace_period=grace_period)
        self.host, self.make_servicer, self.reuse_port = host, servicer, reuse_port

    async def start(self, max_workers: int) -> None:  # max_workers only feeds sync handlers; ours are async
        self._server = aio.server(
            interceptors=(BoundedStatusInterceptor(),),
            options=[
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_LENGTH),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_LENGTH),
                # gRPC shares ports by default on Linux: a taken port would go unnoticed. Only workers share.
                ("grpc.so_reuseport", int(self.reuse_port)),
            ],
        )
        servicer = self.make_servicer(self._data_plane, self._model_repository_extension)
        add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self.host}:{self._port}")  # raises if the port is taken
        await self._server.start()
        await self._server.wait_for_termination()


class SocketModelServer(kserve.ModelServer):
    """ModelServer whose REST app is served on a socket we bind and whose gRPC server we build.

    Subclasses provide `rest_socket()`, `extend_app(app)` (called after KServe built its app, before serving;
    returns the ASGI app to serve, which wraps KServe's) and `grpc_server()` (a LoopbackGRPCServer, or None for no
    gRPC)."""

    def rest_socket(self) -> socket.socket:
        raise NotImplementedError

    def extend_app(self, app):
        raise NotImplementedError

    def grpc_server(self) -> LoopbackGRPCServer | None:
        raise NotImplementedError

    async def _serve_rest(self) -> None:
        self._rest_server.create_application()  # KServe's routes, middlewares and handlers on its module app
        # Served as uvicorn's app, outside FastAPI's and Starlette's own middleware stack (their layers cost ~10% of
        # a batch-1 request, measured): what the platform answers itself never enters them.
        self._rest_server.config.app = self.extend_app(rest_app)
        await self._rest_server._server.serve(sockets=[self.rest_socket()])

    async def _serve(self) -> None:
        # ModelServer.start() queued RESTServer.start(), which binds 0.0.0.0; ours replaces it, unawaited.
        self.servers[0].close()
        self.servers[0] = self._serve_rest()
        grpc = self.grpc_server()
        if grpc is not None:
            self._grpc_server = grpc  # ModelServer.stop() shuts it down on SIGTERM/SIGINT
            self.servers.append(grpc.start(self.max_threads))
        await super()._serve()
