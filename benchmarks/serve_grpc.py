"""gRPC load for `bench_serve.py`: 8 concurrent ModelInfer calls from one grpc.aio client, raw tensor contents."""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np

CONCURRENCY = 8


async def _load(target: str, rows: np.ndarray, seconds: float) -> dict:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=list(rows.shape))
    request = pb.ModelInferRequest(model_name="iris", inputs=[tensor], raw_input_contents=[rows.tobytes()])
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request)  # warm-up: the connection
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await stub.ModelInfer(request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"rps": len(ordered) / elapsed, "p50": ordered[len(ordered) // 2] * 1000,
            "p99": ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)] * 1000}  # fmt: skip


def load(target: str, rows: np.ndarray, seconds: float, repeat: int) -> dict:
    """Medians over `repeat` runs of `seconds` each."""
    runs = [asyncio.run(_load(target, rows, seconds)) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
