"""What makes a model server one revision among several: it names itself on every answer, counts its inference
requests by status class and time (the series canary analysis compares), and can inject faults on request.

Fault injection (`PLATFORM_SERVE_FAULTS=error_rate=0.3,delay_ms=200`) exists to rehearse a bad rollout: the
revision answers that share of inference requests with 503 and delays each by that much, so `canary auto`
can be watched rolling it back. It is off unless set, and applies to the revision it was started with.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

from inference_service.runtime import metrics
from platform_core.errors import ConfigError

HEADER = b"x-platform-revision"


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    delay_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Faults:
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, raw = item.partition("=")
            if key not in ("error_rate", "delay_ms"):
                raise ConfigError(
                    f"PLATFORM_SERVE_FAULTS: unknown fault {key!r}", "use error_rate=<0..1>,delay_ms=<ms>"
                )
            try:
                values[key] = float(raw)
            except ValueError:
                raise ConfigError(
                    f"PLATFORM_SERVE_FAULTS: {key} needs a number, got {raw!r}", "e.g. error_rate=0.3"
                ) from None
        faults = cls(**values)
        if not 0 <= faults.error_rate <= 1 or faults.delay_ms < 0:
            raise ConfigError(f"PLATFORM_SERVE_FAULTS out of range: {text!r}", "error_rate in 0..1, delay_ms >= 0")
        return faults

    def __bool__(self) -> bool:
        return self.error_rate > 0 or self.delay_ms > 0


class Revision:
    """ASGI middleware: `x-platform-revision` on every response; per-revision request series; injected faults."""

    def __init__(self, app, revision: str, faults: Faults):
        self.app = app
        self.revision = revision.encode()
        self.faults = faults
        self._random = random.Random()
        self._codes = {c: metrics.REVISION_REQUESTS.labels(revision, c) for c in ("2xx", "4xx", "5xx")}
        self._seconds = metrics.REVISION_SECONDS.labels(revision)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def named_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (HEADER, self.revision)]}
            await send(message)

        if not (scope["method"] == "POST" and scope["path"].endswith("/infer")):
            return await self.app(scope, receive, named_send)
        started = time.perf_counter()
        try:
            if self.faults.delay_ms:
                await asyncio.sleep(self.faults.delay_ms / 1000)
            if self.faults.error_rate and self._random.random() < self.faults.error_rate:
                body = json.dumps({"error": "injected fault (PLATFORM_SERVE_FAULTS)"}).encode()
                await named_send({"type": "http.response.start", "status": 503,
                                  "headers": [(b"content-type", b"application/json"),
                                              (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await named_send({"type": "http.response.body", "body": body})
                return None
            return await self.app(scope, receive, named_send)
        finally:
            self._codes["5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"].inc()
            self._seconds.observe(time.perf_counter() - started)
