"""Several REST/gRPC worker processes for one revision: `python -m inference_service.runtime.workers N SERVER_ARGS...`.

KServe's own multi-worker mode re-imports its app in each child, which drops the platform's middleware and binds
0.0.0.0. Here each worker is a whole `inference_service.runtime.server` with its model, bound to the same loopback ports
with SO_REUSEPORT (the kernel spreads connections over them), so every worker keeps the binding, the fast path
and the revision middleware. Prometheus counters go through prometheus_client's multiprocess mode, so `/metrics`
from any worker sums all of them (the canary analysis reads it).

This process does not import kserve: it starts the workers, passes SIGTERM/SIGINT on, and when one worker
exits it stops the others and exits with that worker's code, so the revision is seen to be down as a whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from platform_core import settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def server_argv(args: list[str], workers: int) -> list[str]:
    """The command that serves with `workers` processes (one: the server itself, no launcher)."""
    if workers <= 1:
        return [sys.executable, "-m", "inference_service.runtime.server", *args]
    return [sys.executable, "-m", "inference_service.runtime.workers", str(workers), *args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    workers, args = int(argv[0]), argv[1:]
    port = args[args.index("--http-port") + 1]
    metrics_dir = settings.state_dir() / "run" / f"prometheus-{port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters of an earlier server on this port must not add up
    metrics_dir.mkdir(parents=True, mode=0o700)
    env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    command = [sys.executable, "-m", "inference_service.runtime.server", *args, "--reuse-port"]
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]

    def forward(sig, _frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(proc.poll() is None for proc in procs):
        time.sleep(0.2)
    code = next(proc.returncode for proc in procs if proc.returncode is not None)
    forward(signal.SIGTERM, None)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
