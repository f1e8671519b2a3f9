"""Benchmark: what MLflow logging costs a search. The same seeded search (ml_platform/search.yaml, overridable)
with and without logging, in one process and one Ray runtime, alternating, each repeated; prints medians, the
ratio and trials/minute. Goal: logging adds <= 10% wall.

Needs the local stack and a published dataset (`task up`, `task etl`). Logs into its own experiment
(`bench-tune`) so the benchmark's runs never become a gate's challenger.

    task bench:tune -- --samples 8 --max-rounds 50 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # one "View run" line per run otherwise
os.environ["PLATFORM_EXPERIMENT"] = os.environ.get("BENCH_EXPERIMENT", "bench-tune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-rounds", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--config", default=None, help="search config YAML (default ml_platform/search.yaml)")
    args = parser.parse_args()

    from ml_platform import search_config
    from ml_platform.tune import init_ray, run_tune
    from platform_core import health
    from platform_core.progress import console

    health.connect(s3=True)
    config = search_config.load(args.config).with_overrides(samples=args.samples, max_rounds=args.max_rounds)
    init_ray()
    console.print(f"warm-up (untimed): Ray workers import xgboost/ray once; {config.samples} trials, no logging")
    run_tune(config=config, log_to_mlflow=False)

    walls: dict[bool, list[float]] = {False: [], True: []}
    best: dict[bool, set[float]] = {False: set(), True: set()}
    for i in range(args.repeat):
        order = (False, True) if i % 2 == 0 else (True, False)  # alternate: neither variant always runs first
        for logged in order:
            start = time.perf_counter()
            result = run_tune(config=config, log_to_mlflow=logged)
            walls[logged].append(time.perf_counter() - start)
            best[logged].add(round(result.best_metrics["valid_mlogloss"], 10))
            console.print(f"  run {i + 1} {'with' if logged else 'without'} logging: {walls[logged][-1]:.2f}s")

    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    shape = f"{config.samples} trials x <= {config.max_rounds} rounds, {config.algorithm}/{config.scheduler}"
    console.print(f"\nsearch: {shape}, seed {config.seed}, {args.repeat} repeats each (medians)")
    console.print(f"{'variant':<22}{'wall s':>8}{'min s':>8}{'max s':>8}{'trials/min':>12}")
    for name, key in (("without MLflow", False), ("with MLflow logging", True)):
        med = statistics.median(walls[key])
        console.print(f"{name:<22}{med:>8.2f}{min(walls[key]):>8.2f}{max(walls[key]):>8.2f}"
                      f"{config.samples / med * 60:>12.1f}")  # fmt: skip
    console.print(f"ratio with/without: {on / off:.3f} (logging adds {(on / off - 1) * 100:+.1f}% wall; goal <= +10%)")
    same = best[False] == best[True] and len(best[False]) == 1
    console.print(f"same best valid log-loss in every run: {same} ({sorted(best[False] | best[True])})")


if __name__ == "__main__":
    main()
