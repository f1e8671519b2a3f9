"""Benchmark: the latency the serving proxy (Caddy) adds. The same v2 request (batch 1, REST, one keep-alive
connection, sequential) sent through the proxy's public port and straight to the revision that answers it,
alternating in blocks, each block repeated; prints p50/p99 per path (median of the repeats) and the added time.

Needs a served model (`task demo` or `task up etl tune gate export serve`).

    task bench:proxy -- --requests 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx


def _latencies(client: httpx.Client, url: str, body: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        client.post(url, json=body).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per path and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from inference_service.rollout import revisions
    from platform_core import settings

    state = revisions.load()
    served = state.get(state.rolled_out)
    if served is None or not served.running():
        raise SystemExit("nothing is served: run `task serve` first")
    name = settings.MODEL_NAME.get()
    body = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    paths = {"proxy": f"{settings.serve_url()}/v2/models/{name}/infer",
             "direct": f"{served.url}/v2/models/{name}/infer"}  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
    with httpx.Client(timeout=10) as client:
        for url in paths.values():
            _latencies(client, url, body, 200)  # warm-up: connections, caches
        for repeat in range(args.repeat):
            for path, url in paths.items() if repeat % 2 == 0 else reversed(paths.items()):
                lat = _latencies(client, url, body, args.requests)
                results[path].append((_pct(lat, 0.5), _pct(lat, 0.99)))
    print(f"{args.requests} sequential batch-1 REST requests per path, {args.repeat} repeats, medians:")
    med = {p: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for p, rs in results.items()}
    for path, (p50, p99) in med.items():
        print(f"  {path:<7} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    (pp50, pp99), (dp50, dp99) = med["proxy"], med["direct"]
    print(
        f"  proxy adds p50 {pp50 - dp50:+.2f} ms ({pp50 / dp50:.2f}x), p99 {pp99 - dp99:+.2f} ms ({pp99 / dp99:.2f}x)"
    )


if __name__ == "__main__":
    main()
