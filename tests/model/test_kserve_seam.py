"""The KServe internals inference_service/runtime/kserve_seam.py relies on are still there: an upgrade that moves
one fails here, naming it, instead of silently binding 0.0.0.0 or dropping the platform's middleware."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import kserve
import numpy as np
from kserve import InferInput
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.server import RESTServer

from inference_service.runtime import kserve_seam  # noqa: I001  (before any other kserve import)


def need(condition: bool, item: str) -> None:
    assert condition, (f"kserve {version('kserve')} no longer has {item}, which "
                       "inference_service/runtime/kserve_seam.py relies on: re-verify the seam")  # fmt: skip


def test_the_seam_was_verified_against_the_installed_kserve():
    # A deliberate tripwire: on an upgrade, read the seam's list, re-run these tests, then bump VERIFIED_WITH.
    need(version("kserve") == kserve_seam.VERIFIED_WITH, f"version {kserve_seam.VERIFIED_WITH}")


def test_model_server_queues_the_rest_start_in_servers_and_gathers_them_in_serve():
    start = inspect.getsource(kserve.ModelServer.start)
    need("self._rest_server = RESTServer(" in start, "ModelServer._rest_server (built in start())")
    need("self.servers.append(self._rest_server.start())" in start, "servers[0] = the REST start coroutine")
    need("asyncio.gather(*self.servers)" in inspect.getsource(kserve.ModelServer._serve), "ModelServer._serve()")
    need("self._grpc_server.stop(" in inspect.getsource(kserve.ModelServer.stop), "stop() of _grpc_server")


def test_rest_server_builds_its_app_and_serves_uvicorn_on_given_sockets():
    need(callable(getattr(RESTServer, "create_application", None)), "RESTServer.create_application()")
    need("self._server = " in inspect.getsource(RESTServer.__init__), "RESTServer._server (uvicorn's Server)")
    need("self.config = uvicorn.Config(" in inspect.getsource(RESTServer.__init__), "RESTServer.config")
    import uvicorn

    # The platform's app replaces Config.app before serve() loads it, and a loaded app that is not a string is
    # served as it is.
    from kserve.protocol.rest import server as rest_server
    from uvicorn.importer import import_from_string

    need("if not self.config.loaded:" in inspect.getsource(rest_server._RefreshingServer.serve),
         "the REST server loading its uvicorn Config in serve()")  # fmt: skip
    marker = object()
    need(import_from_string(marker) is marker, "uvicorn taking a Config.app object as it is")

    need("sockets" in inspect.signature(uvicorn.Server.serve).parameters, "uvicorn Server.serve(sockets=...)")
    from kserve.model_server import app

    need(app is kserve_seam.rest_app, "kserve.model_server.app (the module-level FastAPI app)")


def test_grpc_server_keeps_the_attributes_its_start_uses():
    server = GRPCServer(0, "data plane", "repository", kwargs={})
    for attribute, value in (("_port", 0), ("_data_plane", "data plane"), ("_model_repository_extension",
                             "repository"), ("_server", None)):  # fmt: skip
        need(getattr(server, attribute, "missing") == value, f"GRPCServer.{attribute}")
    need("self._server.stop(" in inspect.getsource(GRPCServer.stop), "GRPCServer.stop() of _server")


def test_a_raw_tensor_reads_back_as_numpy():
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = InferInput("features", [2, 3], "FP32")
    kserve_seam.set_raw_tensor(tensor, rows.tobytes())
    need(np.array_equal(tensor.as_numpy(), rows), "InferInput._raw_data (read by as_numpy)")


def test_the_grpc_error_interceptor_aborts_through_the_context_it_is_given():
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

    params = list(inspect.signature(ExceptionToStatusInterceptor.handle_exception).parameters)
    need(params == ["self", "ex", "request_or_iterator", "context", "method_name"],
         "ExceptionToStatusInterceptor.handle_exception(ex, request_or_iterator, context, method_name)")  # fmt: skip
    need("await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)"
         in inspect.getsource(ExceptionToStatusInterceptor.handle_exception),
         "handle_exception's context.abort(INVALID_ARGUMENT, reason) for InvalidInput")  # fmt: skip
