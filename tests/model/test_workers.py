"""Several worker processes of one server: all on loopback, one port, metrics summed, stopped together."""

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from platform_core.processes import free_port

BODY = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _listeners(port: int) -> list[tuple[int, str]]:
    return sorted((c.pid, c.laddr.ip) for c in psutil.net_connections("inet")
                  if c.status == psutil.CONN_LISTEN and c.laddr.port == port)  # fmt: skip


def test_two_workers_share_the_loopback_port_and_sum_their_metrics(iris_bundle, tmp_path):
    http, grpc = free_port("127.0.0.1"), free_port("127.0.0.1")
    env = {**os.environ, "PLATFORM_STATE_DIR": str(tmp_path / "state"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "inference_service.runtime.workers", "2", "--model-name", "iris", "--model-dir",
            str(iris_bundle), "--host", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc),
            "--revision", "iris-predictor-00001"]  # fmt: skip
    launcher = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_listeners(http)) < 2 or len(_listeners(grpc)) < 2:
            assert launcher.poll() is None, "the launcher exited"
            assert time.monotonic() < deadline, f"two workers did not listen: {_listeners(http)}"
            time.sleep(0.5)
        listeners = _listeners(http)
        children = {p.pid for p in psutil.Process(launcher.pid).children()}
        assert {pid for pid, _ in listeners} == children and len(children) == 2
        assert all(ip == "127.0.0.1" for _, ip in listeners)
        assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for _, ip in _listeners(grpc))
        while httpx.get(f"http://127.0.0.1:{http}/v2/health/ready").status_code != 200:
            time.sleep(0.5)
        time.sleep(1)  # the second worker may still be loading behind a bound socket
        for _ in range(40):  # a new connection each: the kernel spreads them over both workers
            answer = httpx.post(f"http://127.0.0.1:{http}/v2/models/iris/infer", json=BODY)
            assert answer.status_code == 200 and answer.headers["x-platform-revision"] == "iris-predictor-00001"
        for _ in range(3):  # whichever worker answers /metrics, the counts are both workers' together
            text = httpx.get(f"http://127.0.0.1:{http}/metrics").text
            line = next(x for x in text.splitlines() if x.startswith("platform_inference_requests_total{"))
            assert line.endswith(" 40.0"), line
        metrics_dir = tmp_path / "state" / "run" / f"prometheus-{http}"
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2  # one per worker process
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
        assert not any(psutil.pid_exists(pid) for pid in children)
        assert not _listeners(http) and not metrics_dir.exists()
    finally:
        if launcher.poll() is None:
            launcher.kill()
