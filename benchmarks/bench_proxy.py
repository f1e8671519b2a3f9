"""Benchmark: the latency the serving proxy (Caddy) adds. The same v2 request (batch 1, REST, one keep-alive
connection, sequential) sent through the proxy's public port, by path (`/v2/models/<name>/infer`) and by KServe's
host form (`Host: <name>.localhost`), and straight to the revision that answers it, alternating in blocks, each
block repeated; prints p50/p99 per path (median of the repeats) and the added time. With several models served,
a model in a later routing slot pays a few more file stats per request: `--model` picks the one to measure.

Needs a served model (`task demo` or `task up etl tune gate export serve`).

    task bench:proxy -- --requests 2000 --repeat 3 [--model wide-xgboost]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx


def _latencies(client: httpx.Client, url: str, body: dict, headers: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        client.post(url, json=body, headers=headers).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per path and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=None, help="served model to measure [default: PLATFORM_MODEL_NAME]")
    args = parser.parse_args()

    from inference_service.rollout import proxy, revisions
    from platform_core import settings

    name = args.model or settings.MODEL_NAME.get()
    state = revisions.load(name)
    served = state.get(state.rolled_out)
    if served is None or not served.running():
        raise SystemExit(f"{name} is not served: run `task serve -- --model {name}` first")
    slot = proxy.served().get(name)
    features = httpx.get(f"{served.url}/v2/models/{name}", timeout=10).json()["inputs"][0]["shape"][1]
    body = {"inputs": [{"name": "features", "shape": [1, features], "datatype": "FP32", "data": [0.5] * features}]}
    path = f"/v2/models/{name}/infer"
    paths = {"proxy": (f"{settings.serve_url()}{path}", {}),
             "host": (f"{settings.serve_url()}{path}", {"Host": proxy.model_host(name)}),
             "direct": (f"{served.url}{path}", {})}  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
    with httpx.Client(timeout=10) as client:
        for url, headers in paths.values():
            _latencies(client, url, body, headers, 200)  # warm-up: connections, caches
        for repeat in range(args.repeat):
            for label, (url, headers) in paths.items() if repeat % 2 == 0 else reversed(paths.items()):
                lat = _latencies(client, url, body, headers, args.requests)
                results[label].append((_pct(lat, 0.5), _pct(lat, 0.99)))
    where = f"routing {slot.name if slot else '?'} of {len(proxy.served())} served model(s)"
    print(f"{name} ({where}): {args.requests} sequential batch-1 REST requests per path, {args.repeat} repeats, "
          "medians:")  # fmt: skip
    med = {p: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for p, rs in results.items()}
    for label, (p50, p99) in med.items():
        print(f"  {label:<7} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    dp50, dp99 = med["direct"]
    for label in ("proxy", "host"):
        pp50, pp99 = med[label]
        print(f"  {label} adds p50 {pp50 - dp50:+.2f} ms ({pp50 / dp50:.2f}x), "
              f"p99 {pp99 - dp99:+.2f} ms ({pp99 / dp99:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
