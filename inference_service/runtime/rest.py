"""What the platform adds to KServe's REST app, without leaving it: the same FastAPI app and KServe's endpoints
answer, these only fill gaps in its Open Inference Protocol v2 behaviour.

- Versioned routes (`/v2/models/{name}/versions/{v}/...`): KServe answers 501 for every version. Here the
  served version is routed to the model's endpoints and any other version gets 404 with `{"error"}`.
- A JSON body without a Content-Type header (tritonclient's JSON mode sends none) is read as JSON unless the
  binary-extension header says otherwise; KServe would take it for a binary payload and answer 400.
- Malformed or empty JSON gets 400 `{"error": ...}` like every other rejection, not FastAPI's 422 `{"detail"}`;
  FastAPI's own errors (unknown route, wrong method, unparsable body) carry `{"error"}` too.
- A binary-extension request whose header length or tensor sizes do not add up gets 400 (KServe: 500).
- A body over PLATFORM_SERVE_MAX_REQUEST_MB gets 413 before anything parses it; a body that has not arrived
  within PLATFORM_SERVE_BODY_TIMEOUT_S gets 408 and the connection is closed (uvicorn has no body timeout: a
  stalled POST once held its connection for good).
- A served model's metadata (`GET /v2/models/<name>`) carries its version, platform and properties (features,
  classes, dataset), which KServe's response model would drop.
- Every error text is bounded (`bounded`): user input is quoted at a bounded length.
- Inference requests a served model takes as they are go the fast way (`inference_service.runtime.fast_rest`); the rest
  are replayed to KServe's route. Bodies over 256 KiB are decoded and predicted on a worker thread, so liveness
  and small requests keep answering during a large batch.

All of it is one plain ASGI middleware wrapping KServe's whole app (outside FastAPI's middleware stack: what it
answers never enters it), inside the revision's own, and two exception handlers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import inference_service.runtime.kserve_seam  # noqa: F401  (before any other kserve import)

# isort: split

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference_service.runtime import fast_rest, metrics
from inference_service.runtime.bounded import message as bounded

logger = logging.getLogger("kserve")

VERSIONED = re.compile(r"^/v2/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")
BINARY_HEADER = b"inference-header-content-length"
OFFLOAD_BYTES = 256 << 10  # larger request bodies are decoded and predicted off the event loop
# The one map from platform errors to REST status codes (KServe's handlers agree for its own routes).
STATUS = ((InvalidInput, 400), (ModelNotFound, 404), (ModelNotReady, 503))


def status_of(exc: Exception) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


class VersionNotServed(ModelNotFound):
    """A request for a version of a served model that this server does not hold (REST 404, gRPC NOT_FOUND)."""

    def __init__(self, name: str, version: str, served: str):
        super().__init__(name)
        self.reason = f"model {name} has no version {version} here (serving {served})"


class V2Gaps:
    """ASGI middleware: versioned routes, body limit, binary-extension checks, JSON without Content-Type."""

    def __init__(self, app, versions: dict[str, str], max_body: int, models: dict | None = None,
                 body_timeout: float = 10.0):  # fmt: skip
        self.app = app
        self.versions = versions  # model name -> the registry version this server answers for
        self.max_body, self.body_timeout = max_body, body_timeout
        # Served models that answer REST themselves (`rest_answer`, and `rest_answer_joined` on the loop): their
        # requests take the fast path.
        self.models = {n: m for n, m in (models or {}).items() if hasattr(m, "rest_answer_joined")}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/metrics" and (summed := metrics.exposition(_header(scope, b"accept"))):
            body, content_type = summed
            headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": body})
        if "/versions/" in path and (match := VERSIONED.match(path)):
            name, version = match["name"], match["version"]
            served = self.versions.get(name)
            if served is not None and version != served:
                metrics.rejected(name, served, "version")
                return await _error(send, 404, VersionNotServed(name, version, served).reason)
            # The served version, or an unknown model (KServe's unversioned route then answers its own 404).
            plain = f"/v2/models/{name}{match['rest'] or ''}"
            scope = {**scope, "path": plain, "raw_path": plain.encode()}
        if scope["method"] == "GET" and scope["path"].count("/") == 3 and scope["path"].startswith("/v2/models/"):
            model = self.models.get(scope["path"].split("/")[3])
            if model is not None and model.ready:
                body = model.metadata_json
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                return await send({"type": "http.response.body", "body": body})
        if scope["method"] in ("POST", "PUT", "PATCH"):
            headers = scope["headers"]
            found = {k.lower(): v for k, v in headers}
            length = found.get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_body:
                # Refused before anything parses it: a huge JSON body would hold the event loop for seconds.
                problem = (f"request body of {int(length)} bytes is over the limit of {self.max_body >> 20} MiB "
                           "(PLATFORM_SERVE_MAX_REQUEST_MB); send smaller batches")  # fmt: skip
                logger.warning("rejected request: %s", problem)
                self._count(path, "body_limit")
                return await _error(send, 413, problem)
            try:
                async with asyncio.timeout(self.body_timeout):  # a timer handle, not a task per request (wait_for)
                    body = await read_body(receive, self.max_body)
            except TimeoutError:
                problem = (f"the request body did not arrive within {self.body_timeout:g} s "
                           "(PLATFORM_SERVE_BODY_TIMEOUT_S); send it whole")  # fmt: skip
                logger.warning("rejected request: %s", problem)
                self._count(path, "body_timeout")
                return await _error(send, 408, problem, close=True)
            if body is None:  # a chunked body (no Content-Length) that went over the limit
                self._count(path, "body_limit")
                return await _error(send, 413, f"request body is over the limit of {self.max_body >> 20} MiB")
            receive = _replay(body, receive)
        if scope["method"] == "POST" and path.endswith("/infer"):
            binary, ctype = found.get(BINARY_HEADER), found.get(b"content-type", b"").strip()
            model = self.models.get(scope["path"].split("/")[3]) if scope["path"].count("/") == 4 else None
            fast = model is not None and model.ready and (binary is not None or ctype in (b"", *JSON_TYPES))
            if binary is not None and (problem := binary_problem(binary, body)):
                logger.warning("rejected request: %s", bounded(problem))
                self._count(path, "binary_body")
                return await _error(send, 400, problem)
            if fast and await _answer_fast(model, body, binary, send):
                return None
            if binary is None and not ctype:  # absent or empty
                kept = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        return await self.app(scope, receive, send)

    def _count(self, path: str, reason: str) -> None:
        name = path.split("/")[3] if path.count("/") >= 3 else ""
        if name in self.versions:  # only served models: arbitrary names must not grow the label set
            metrics.rejected(name, self.versions[name], reason)


JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


def _decode_and_answer(model, body: bytes, binary: bytes | None) -> tuple[bytes, int | None]:
    return model.rest_answer(fast_rest.decode(body, binary, model.name))


async def _decode_and_answer_joined(model, body: bytes, binary: bytes | None) -> tuple[bytes, int | None]:
    return await model.rest_answer_joined(fast_rest.decode(body, binary, model.name))


async def _answer_fast(model, body: bytes, binary: bytes | None, send) -> bool:
    """Answer on the fast path; False when the request is not one it takes (the caller replays it)."""
    try:
        if len(body) > OFFLOAD_BYTES:
            answer, header_length = await asyncio.to_thread(_decode_and_answer, model, body, binary)
        else:  # on the loop, predicted together with the other small requests waiting on it
            answer, header_length = await _decode_and_answer_joined(model, body, binary)
    except fast_rest.NotFast:
        return False
    except Exception as exc:  # noqa: BLE001 - every failure is answered in {"error"} form, never dropped
        status = status_of(exc)
        if status < 500:
            logger.warning("rejected request: %s: %s", type(exc).__name__, bounded(str(exc)))
        else:
            logger.exception("inference failed")
        await _error(send, status, str(exc) if status < 500 else f"inference failed: {type(exc).__name__}")
        return True
    headers = [(b"content-length", str(len(answer)).encode())]
    if header_length is None:
        headers.append((b"content-type", b"application/json"))
    else:
        headers += [(b"content-type", b"application/octet-stream"), (BINARY_HEADER, str(header_length).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
    return True


ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4, "INT32": 4,
            "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}  # fmt: skip


def binary_problem(header_length: bytes, body: bytes) -> str | None:
    """What is wrong with a binary-extension request (KServe answers 500 for these), or None."""
    try:
        size = int(header_length)
    except ValueError:
        return f"Inference-Header-Content-Length must be an integer, got {header_length.decode(errors='replace')!r}"
    if not 0 < size <= len(body):
        return f"Inference-Header-Content-Length {size} does not fit a body of {len(body)} bytes"
    try:
        header = json.loads(body[:size])
        inputs = header["inputs"]
        declared = [(t, t.get("parameters", {}).get("binary_data_size")) for t in inputs]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the JSON part of a binary request is not a v2 inference request (see Inference-Header-Content-Length)"
    total = 0
    for tensor, nbytes in declared:
        if nbytes is None:
            continue
        if not isinstance(nbytes, int) or nbytes < 0:
            return f"input {tensor.get('name')!r}: binary_data_size must be a byte count, got {nbytes!r}"
        shape, itemsize = tensor.get("shape"), ITEMSIZE.get(tensor.get("datatype"))
        if itemsize and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape):
            expected = itemsize
            for dim in shape:
                expected *= dim
            if nbytes != expected:
                return (f"input {tensor.get('name')!r}: binary_data_size {nbytes} does not match shape {shape} "
                        f"of {tensor.get('datatype')} ({expected} bytes)")  # fmt: skip
        total += nbytes
    if total != len(body) - size:
        return f"binary tensors declare {total} bytes but the request carries {len(body) - size} after the header"
    return None


async def read_body(receive, limit: int) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, original):
    sent = False

    async def receive():
        nonlocal sent
        if sent:  # after the body: whatever the connection says next (a disconnect)
            return await original()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _error(send, status: int, message: str, close: bool = False) -> None:
    body = json.dumps({"error": bounded(message)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # uvicorn closes the connection after an answer that says so
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    message = f"malformed request body: {first.get('msg', 'invalid')} at {where}; expected a v2 inference request"
    message = bounded(message)
    logger.warning("rejected request: %s", message)
    name = request.path_params.get("model_name", "")
    versions = getattr(request.app.state, "served_versions", {})
    if name in versions:
        metrics.rejected(name, versions[name], "malformed_json")
    return JSONResponse(status_code=400, content={"error": message})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own errors (unknown route, wrong method, unparsable body) in the same {"error"} shape."""
    detail = bounded(str(exc.detail))
    if exc.status_code < 500:
        logger.warning("rejected request: %s %s: %s", request.method, bounded(request.url.path, 200), detail)
    return JSONResponse(status_code=exc.status_code, content={"error": detail}, headers=exc.headers)


def extend(app: FastAPI, models: list, max_body: int, body_timeout: float = 10.0) -> V2Gaps:
    """Install the handlers on KServe's app (after KServe built it, before it serves) -> the ASGI app to serve:
    the middleware wrapping KServe's whole app, its own middleware stack included."""
    versions = {m.name: str(getattr(m, "version", "") or "") for m in models}
    app.state.served_versions = versions
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return V2Gaps(app, versions=versions, max_body=max_body, models={m.name: m for m in models},
                  body_timeout=body_timeout)  # fmt: skip
