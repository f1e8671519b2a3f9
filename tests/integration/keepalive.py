"""Keep-alive load through the serving proxy for the rollout tests: per model, one client of each kind on one
persistent connection (Python's http.client and httpx over REST, grpc over gRPC), for a bounded time, counting
every request that did not get its 200 / OK. No client retries: a request the proxy drops is counted."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np

from inference_service.rollout.proxy import model_host
from inference_service.runtime.revision_http import HEADER
from platform_core import settings

CLIENTS = ("http.client", "httpx", "grpc")


@dataclass(frozen=True)
class Target:
    """A model and how its requests find it: REST by path (`host=False`) or KServe's host form (`host=True`);
    gRPC by the `<model>.localhost` authority, or (`authority=False`) none, which reaches the default model."""

    model: str
    features: int
    host: bool = False
    authority: bool = True

    @classmethod
    def of(cls, model: str, **how) -> Target:
        """A target with the feature count the served model's metadata names."""
        meta = httpx.get(f"{settings.serve_url()}/v2/models/{model}", timeout=10).raise_for_status().json()
        return cls(model, meta["inputs"][0]["shape"][1], **how)

    def label(self, kind: str) -> str:
        if kind == "grpc":
            return f"{self.model} grpc " + ("by authority" if self.authority else "default model")
        return f"{self.model} {kind} " + ("by host" if self.host else "by path")


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    by_revision: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, revision: str | None, problem: str | None) -> None:
        self.sent += 1
        self.by_revision[revision or "?"] += 1
        if problem is not None:
            self.failed += 1
            if len(self.failures) < 5:
                self.failures.append(problem)


def _body(features: int, seed: int) -> dict:
    data = np.random.default_rng(seed).uniform(0.1, 5.0, size=(2, features)).astype(np.float32)
    return {"inputs": [{"name": "features", "shape": [2, features], "datatype": "FP32", "data": data.ravel().tolist()}]}


class KeepAliveLoad:
    """Every client kind against every target, each on its own thread and connection, until stopped or
    `max_seconds` passed; `pause` seconds between a client's requests."""

    def __init__(self, targets: list[Target], clients=CLIENTS, max_seconds: float = 300, pause: float = 0.002):
        self.targets, self.clients, self.max_seconds, self.pause = targets, clients, max_seconds, pause
        self.tallies: dict[str, Tally] = {}
        self._labels: dict[tuple[int, str], str] = {}
        for index, target in enumerate(targets):
            for kind in clients:
                label = target.label(kind)
                while label in self.tallies:  # the same client twice (two targets alike for it)
                    label += "'"
                self._labels[(index, kind)], self.tallies[label] = label, Tally()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _running(self, started: float) -> bool:
        return not self._stop.is_set() and time.monotonic() - started < self.max_seconds

    def _rest(self, index: int, target: Target, kind: str) -> None:
        tally, started = self.tallies[self._labels[(index, kind)]], time.monotonic()
        body = json.dumps(_body(target.features, len(target.model))).encode()
        path = f"/v2/models/{target.model}/infer"
        headers = {"Content-Type": "application/json"}
        if target.host:
            headers["Host"] = model_host(target.model)
        host, port, revision = settings.HOST.get(), settings.SERVE_HTTP_PORT.get(), HEADER.decode()
        client = httpx.Client(base_url=f"http://{host}:{port}", timeout=10)
        conn = http.client.HTTPConnection(host, port, timeout=10)

        def send() -> tuple[int, str | None]:
            if kind == "httpx":
                answer = client.post(path, content=body, headers=headers)
                return answer.status_code, answer.headers.get(revision)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader(revision)

        try:
            while self._running(started):
                try:
                    status, answered_by = send()
                    tally.add(answered_by, None if status == 200 else f"{kind}: HTTP {status}")
                except (OSError, http.client.HTTPException, httpx.HTTPError) as exc:
                    tally.add(None, f"{kind}: {type(exc).__name__}: {exc}")
                    if kind == "http.client":
                        conn.close()  # the next request opens a new connection
                time.sleep(self.pause)
        finally:
            client.close()
            conn.close()

    def _grpc(self, index: int, target: Target) -> None:
        import inference_service.runtime.kserve_seam  # noqa: F401  (before any other kserve import)

        # isort: split

        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        tally, started = self.tallies[self._labels[(index, "grpc")]], time.monotonic()
        body = _body(target.features, len(target.model))["inputs"][0]
        tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=body["shape"])
        tensor.contents.fp32_contents.extend(body["data"])
        request = pb.ModelInferRequest(model_name=target.model, inputs=[tensor])
        options = [("grpc.default_authority", model_host(target.model))] if target.authority else []
        with grpc.insecure_channel(f"{settings.HOST.get()}:{settings.SERVE_GRPC_PORT.get()}", options=options) as ch:
            infer = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer
            while self._running(started):
                try:
                    _answer, call = infer.with_call(request, timeout=10)
                    tally.add(dict(call.initial_metadata()).get(HEADER.decode()), None)
                except grpc.RpcError as exc:
                    tally.add(None, f"grpc: {exc.code().name}: {exc.details()}")
                time.sleep(self.pause)

    def start(self) -> KeepAliveLoad:
        for index, target in enumerate(self.targets):
            for kind in self.clients:
                work, args = (self._grpc, (index, target)) if kind == "grpc" else (self._rest, (index, target, kind))
                self._threads.append(threading.Thread(target=work, args=args, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> dict[str, Tally]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.tallies

    def __enter__(self) -> KeepAliveLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def failed(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    def failures(self) -> list[str]:
        return [f for t in self.tallies.values() for f in t.failures]

    def summary(self) -> str:
        return ", ".join(f"{label} {t.failed}/{t.sent}" for label, t in self.tallies.items())
