"""Benchmark: the platform's v2 server against its peers, same model, same requests, same machine, same run.

Servers (each its own process on a free loopback port, started once, measured in rotating order):
  platform     this server (`inference_service.runtime.server`), one process
  platform x2  the same with PLATFORM_SERVE_WORKERS=2 (two processes on one port, SO_REUSEPORT)
  kserve       stock KServe: plain kserve.Model, DMatrix + booster.predict, logging off (benchmarks/serve_peers.py)
  kserve+log   the same with KServe's default logging
  mlflow       `mlflow models serve` on the same booster (tensor input)
  bare ASGI    a fixed answer on uvicorn: the HTTP floor
  in-process   booster.inplace_predict in this process: the limit
Load: wrk (Debian package `wrk`) with 8 connections at batch 1 (JSON) and batch 256 (JSON and binary tensors),
and 8 concurrent gRPC calls from a grpc.aio client. Each figure is measured --repeat times; medians are printed
with the ratios the targets name. Then: liveness probes during a 1M-row request, and RSS per server process.

    task bench:serve -- --duration 10 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import serve_grpc  # noqa: E402
from benchmarks.serve_peers import write_bundle  # noqa: E402
from platform_core.bundle import MODEL_FILE  # noqa: E402
from platform_core.processes import free_port  # noqa: E402

PYTHON = sys.executable
ROWS = np.random.default_rng(0).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(1_000_000, 4))
ROWS = ROWS.astype(np.float32)


class Server:
    def __init__(self, name: str, argv: list[str], ready: str, infer: str, env: dict | None = None, log: Path = None):
        self.name, self.argv, self.ready_path, self.infer_path = name, argv, ready, infer
        self.env, self.log, self.proc, self.port, self.grpc_port = env or {}, log, None, 0, 0

    def start(self, port: int, grpc_port: int) -> None:
        self.port, self.grpc_port = port, grpc_port
        argv = [a.replace("{port}", str(port)).replace("{grpc}", str(grpc_port)) for a in self.argv]
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}: see {self.log}")
            try:
                if httpx.get(self.url(self.ready_path), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} did not get ready in {timeout:.0f} s: see {self.log}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mib(self) -> list[float]:
        procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        python = [p for p in procs if p.memory_info().rss > 100 << 20] or procs  # the servers, not a launcher
        return [p.memory_info().rss / 2**20 for p in python]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def v2_json(batch: int) -> tuple[bytes, dict]:
    body = {"inputs": [{"name": "features", "shape": [batch, 4], "datatype": "FP32",
                        "data": ROWS[:batch].round(1).ravel().tolist()}]}  # fmt: skip
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def v2_binary(batch: int) -> tuple[bytes, dict]:
    raw = ROWS[:batch].tobytes()
    header = json.dumps({"inputs": [{"name": "features", "shape": [batch, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    return header + raw, headers


def mlflow_json(batch: int) -> tuple[bytes, dict]:
    return json.dumps({"inputs": ROWS[:batch].round(1).tolist()}).encode(), {"Content-Type": "application/json"}


def wrk(url: str, body: bytes, headers: dict, seconds: float, workdir: Path) -> dict:
    body_file = workdir / f"body-{abs(hash(body))}.bin"
    body_file.write_bytes(body)
    lines = [f'local f = io.open("{body_file}", "rb")', "wrk.body = f:read('*a')", "f:close()", 'wrk.method = "POST"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script = workdir / "post.lua"
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds:.0f}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50": _ms(out, "50%"),
            "p99": _ms(out, "99%"), "errors": int(errors[1]) if errors else 0,
            "socket_errors": socket_errors[1] if socket_errors else ""}  # fmt: skip


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"^\s+{pct}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def in_process(bundle: Path, batch: int, seconds: float) -> dict:
    import xgboost as xgb

    booster = xgb.Booster(params={"nthread": 1}, model_file=str(bundle / MODEL_FILE))
    rows, calls, start = ROWS[:batch], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        booster.inplace_predict(rows)
        calls += 1
    rate = calls / (time.perf_counter() - start)
    return {"rps": rate, "p50": 1000 / rate, "p99": float("nan"), "errors": 0, "socket_errors": ""}


PROBE = """
import sys, time, httpx
with httpx.Client(timeout=10) as client:
    client.get(sys.argv[1])
    print("ready", flush=True)
    while True:
        started = time.perf_counter()
        client.get(sys.argv[1]).raise_for_status()
        print((time.perf_counter() - started) * 1000, flush=True)
        time.sleep(0.02)
"""


def liveness_during(server: Server, rows: int, binary: bool) -> dict:
    """Probe /v2/health/live every 20 ms from another process (not sharing this one's GIL with the client of the
    big request) while one request of `rows` rows is in flight."""
    import threading

    body, headers = (v2_binary if binary else v2_json)(rows)
    answer = {}

    def big() -> None:
        started = time.perf_counter()
        response = httpx.post(server.url(server.infer_path), content=body, headers=headers, timeout=120)
        answer.update(status=response.status_code, seconds=time.perf_counter() - started)

    probe = subprocess.Popen([PYTHON, "-c", PROBE, server.url("/v2/health/live")], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    probe.stdout.readline()  # "ready": imported and connected
    sender = threading.Thread(target=big, daemon=True)
    sender.start()
    sender.join()
    probe.terminate()
    probes = [float(line) for line in probe.stdout.read().split()]
    probe.wait()
    return {"rows": rows, "mode": "binary" if binary else "JSON", "status": answer["status"],
            "request_s": answer["seconds"], "probes": len(probes), "max_ms": max(probes),
            "median_ms": statistics.median(probes)}  # fmt: skip


SCENARIOS = [  # name, batch, encoder per server kind
    ("batch 1 JSON", 1, {"v2": lambda b: v2_json(b), "mlflow": mlflow_json, "bare": lambda b: v2_json(b)}),
    ("batch 256 JSON", 256, {"v2": lambda b: v2_json(b), "mlflow": mlflow_json}),
    ("batch 256 binary", 256, {"v2": lambda b: v2_binary(b)}),
]


def servers(bundle: Path, mlflow_model: Path, state: Path, logs: Path) -> dict[str, tuple[str, Server]]:
    server = [PYTHON, "-m", "inference_service.runtime.server", "--model-name", "iris", "--model-dir", str(bundle),
              "--version", "1", "--http-port", "{port}", "--grpc-port", "{grpc}"]  # fmt: skip
    env = {"PLATFORM_STATE_DIR": str(state), "PLATFORM_SERVE_MAX_ROWS": "1000000"}
    v2 = ("/v2/health/ready", "/v2/models/iris/infer")
    peers = [PYTHON, str(ROOT / "benchmarks" / "serve_peers.py")]
    mlflow = [str(Path(PYTHON).with_name("mlflow")), "models", "serve", "-m", str(mlflow_model), "--env-manager",
              "local", "-h", "127.0.0.1", "-p", "{port}"]  # fmt: skip
    return {
        "platform": ("v2", Server("platform", server, *v2, env=env, log=logs / "platform.log")),
        "platform x2": (
            "v2",
            Server(
                "platform x2",
                [PYTHON, "-m", "inference_service.runtime.workers", "2", *server[3:]],
                *v2,
                env=env,
                log=logs / "platform-x2.log",
            ),
        ),  # fmt: skip
        "kserve": (
            "v2",
            Server(
                "kserve",
                [*peers, "stock", "--model-dir", str(bundle), "--port", "{port}", "--quiet"],
                *v2,
                log=logs / "kserve.log",
            ),
        ),  # fmt: skip
        "kserve+log": (
            "v2",
            Server(
                "kserve+log",
                [*peers, "stock", "--model-dir", str(bundle), "--port", "{port}"],
                *v2,
                log=logs / "kserve-log.log",
            ),
        ),  # fmt: skip
        # `mlflow models serve` runs `uvicorn` from PATH: the venv's.
        "mlflow": (
            "mlflow",
            Server(
                "mlflow",
                mlflow,
                "/ping",
                "/invocations",
                log=logs / "mlflow.log",
                env={"PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}"},
            ),
        ),  # fmt: skip
        "bare ASGI": (
            "bare",
            Server("bare ASGI", [*peers, "bare", "--port", "{port}"], "/", "/", log=logs / "bare.log"),
        ),  # fmt: skip
    }


def _table(title: str, results: dict[str, list[dict]], batch: int) -> dict[str, dict]:
    print(f"\n{title} (8 connections, medians):")
    print(f"  {'server':<12} {'req/s':>9} {'rows/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>8}  errors")
    medians = {}
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
        med["errors"] = sum(r["errors"] for r in runs)
        medians[name] = med
        ratio = med["p99"] / med["p50"] if med["p50"] and med["p99"] == med["p99"] else float("nan")
        print(f"  {name:<12} {med['rps']:>9,.0f} {med['rps'] * batch:>11,.0f} {med['p50']:>8.2f} {med['p99']:>8.2f} "
              f"{ratio:>8.1f}  {med['errors']}")  # fmt: skip
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], help="servers to leave out (e.g. mlflow)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu), then run again")
    import logging

    import mlflow.xgboost
    import xgboost as xgb

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # save_model's environment inference chatter

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        bundle = write_bundle(tmp / "bundle")
        mlflow_model = tmp / "mlflow-model"
        mlflow.xgboost.save_model(xgb.Booster(model_file=str(bundle / MODEL_FILE)), str(mlflow_model))
        (tmp / "logs").mkdir()
        chosen = {n: s for n, s in servers(bundle, mlflow_model, tmp / "state", tmp / "logs").items()
                  if n not in args.skip}  # fmt: skip
        try:
            for _kind, server in chosen.values():
                server.start(free_port("127.0.0.1"), free_port("127.0.0.1"))
            for _kind, server in chosen.values():
                server.wait()
            print(f"{len(chosen)} servers up; {args.repeat} x {args.duration:.0f} s per figure, rotating order")
            _run(args, chosen, bundle, tmp)
        finally:
            for _kind, server in chosen.values():
                server.stop()


def _run(args, chosen: dict, bundle: Path, tmp: Path) -> None:
    summary = {}
    for title, batch, encoders in SCENARIOS:
        entries = [(n, s, encoders[k]) for n, (k, s) in chosen.items() if k in encoders]
        results: dict[str, list[dict]] = {n: [] for n, _, _ in entries}
        results["in-process"] = []
        for repeat in range(args.repeat):
            order = entries[repeat % len(entries) :] + entries[: repeat % len(entries)]
            for name, server, encode in order:
                body, headers = encode(batch)
                wrk(server.url(server.infer_path), body, headers, 2, tmp)  # warm-up
                results[name].append(wrk(server.url(server.infer_path), body, headers, args.duration, tmp))
            results["in-process"].append(in_process(bundle, batch, args.duration / 2))
        summary[title] = _table(title, results, batch)
    grpc_results = {}
    for name in ("platform", "platform x2"):
        if name in chosen:
            target = f"127.0.0.1:{chosen[name][1].grpc_port}"
            grpc_results[name] = [serve_grpc.load(target, ROWS[:b], args.duration, args.repeat)
                                  for b in (1, 256)]  # fmt: skip
    if grpc_results:
        print("\ngRPC, 8 concurrent calls from one grpc.aio client, raw tensors (medians):")
        for name, (one, many) in grpc_results.items():
            print(f"  {name:<12} batch 1: {one['rps']:,.0f} req/s p50 {one['p50']:.2f} ms p99 {one['p99']:.2f} ms"
                  f" | batch 256: {many['rps'] * 256:,.0f} rows/s p99 {many['p99']:.2f} ms")  # fmt: skip
    _targets(summary)
    print("\nRSS after the load (MiB per server process):")
    for name, (_kind, server) in chosen.items():
        print(f"  {name:<12} " + ", ".join(f"{r:.0f}" for r in server.rss_mib()))
    if "platform" in chosen:
        server = chosen["platform"][1]
        print("\nliveness during one large request (platform, /v2/health/live every 20 ms):")
        for binary in (True, False):
            live = liveness_during(server, 1_000_000, binary)
            print(f"  {live['rows']:,} rows {live['mode']:<6}: HTTP {live['status']} in {live['request_s']:.2f} s; "
                  f"{live['probes']} probes, median {live['median_ms']:.1f} ms, max {live['max_ms']:.1f} ms "
                  f"(target < 100 ms)")  # fmt: skip
        print(f"  platform RSS after them: {server.rss_mib()[0]:.0f} MiB")


def _targets(summary: dict) -> None:
    one, binary = summary.get("batch 1 JSON", {}), summary.get("batch 256 binary", {})
    print("\ntargets:")
    for name in ("platform", "platform x2"):
        if name in one and "kserve" in one:
            ratio = one[name]["rps"] / one["kserve"]["rps"]
            tail = one[name]["p99"] / one[name]["p50"]
            print(f"  {name}: batch 1 = {ratio:.2f}x stock KServe (target >= 5x: {'met' if ratio >= 5 else 'not met'})"
                  f", p99/p50 = {tail:.1f} (target <= 3: {'met' if tail <= 3 else 'not met'})")  # fmt: skip
        if name in binary:
            share = binary[name]["rps"] / binary["in-process"]["rps"]
            print(f"  {name}: batch 256 binary = {share:.0%} of in-process rows/s "
                  f"(target >= 50%: {'met' if share >= 0.5 else 'not met'})")  # fmt: skip


if __name__ == "__main__":
    main()
