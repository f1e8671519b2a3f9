"""`platform demo`: every stage end to end on the local stack, through the same commands a user types (each
calls its stage's public function), with a timing table at the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from rich.table import Table

from data_platform import cli as data_cli
from inference_service import cli as serving_cli
from ml_platform import cli as ml_cli
from platform_core import cli as stack_cli
from platform_core import settings, stack
from platform_core.bundle import CHALLENGER
from platform_core.progress import console, held, styled

# The first model is a quick baseline (what a team serves first): at most this many trials, a fifth of the
# rounds. The search the config describes then challenges it. Two searches of the full budget on iris land within
# the gate's 0.5% of each other (mlogloss 0.1359 vs 0.1363, measured), so the canary round would rarely run.
BASELINE_TRIALS = 2
BASELINE_ROUNDS_SHARE = 5


def baseline() -> None:
    """The first search: a quick baseline (BASELINE_TRIALS trials, 1/BASELINE_ROUNDS_SHARE of the rounds)."""
    from ml_platform.search_config import load

    full = load(None).with_overrides()
    ml_cli.tune(samples=min(BASELINE_TRIALS, full.samples), max_rounds=max(1, full.max_rounds // BASELINE_ROUNDS_SHARE))


def second_search() -> list:
    """The search of ml_platform/search.yaml's full budget (seed PLATFORM_DEMO_SECOND_SEED), run while the first
    model is exported and served: without a live display, its result line kept for the canary stage."""
    with held() as lines:
        ml_cli.tune(seed=settings.DEMO_SECOND_SEED.get())
    return lines


def second_round(search: _Alongside, release: Callable[[], None] | None = None) -> None:
    """The second search's model (see second_search) through the gate; a passing challenger goes out as a 10%
    canary that the automatic analysis promotes or rolls back. A rejected one ends the demo with the first model
    serving. `release` (the Ray runtime's shutdown) runs alongside once the search is done."""
    from ml_platform.gate import GateRejected

    search.wait()
    if release is not None:
        _Alongside(release)
    for line in search.result:
        console.print(line, soft_wrap=True)
    try:
        ml_cli.gate(promote=False)
    except GateRejected as exc:
        console.print(
            styled(f"the second model did not pass the gate ({exc.message}); the first keeps serving", "yellow")
        )
        return
    serving_cli.canary_start(alias=CHALLENGER, percent=10)
    serving_cli.canary_auto(load=True)


class _Alongside:
    """A stage (or a later stage's start-up) run in a background thread while the next stages run; `wait`
    returns its seconds or raises its error in the stage that needs it.

    `stay`: the thread lives on until the process ends. Ray starts its raylet and GCS with the parent-death
    signal (PR_SET_PDEATHSIG), which the kernel sends when the *thread* that started them ends: a thread that
    returned after ray.init would take the Ray runtime (and with it this process) down."""

    def __init__(self, command: Callable[[], object], stay: bool = False):
        self.seconds, self.error, self.result = 0.0, None, None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(command, stay), name="stage-alongside", daemon=True).start()

    def _run(self, command: Callable[[], object], stay: bool) -> None:
        start = time.monotonic()
        try:
            self.result = command()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting stage
            self.error = exc
        self.seconds = round(time.monotonic() - start, 1)
        self._done.set()
        if stay:
            threading.Event().wait()

    def wait(self) -> float:
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.seconds


def _start_ray() -> None:
    from ml_platform.tune import init_ray

    init_ray()


def _stop_ray() -> None:
    from ml_platform.tune import stop_ray

    stop_ray()


def run(keep_runtimes: bool = False) -> None:
    """End to end: up, ETL, a quick baseline search, gate, export, serve v1; the full search, gate, canary at 10%,
    automatic analysis (promote or roll back), predict. Leaves the stack running.

    The Spark session and the Ray runtime it started are stopped alongside the next stages once no later stage
    needs them (after the ETL; after the second search), not at the process's exit, which waited ~3 s for them
    (measured); `keep_runtimes` keeps both for a caller that goes on using them (the test session). A session
    that was running before the demo is never stopped by it."""
    search: _Alongside | None = None
    release_ray = None if keep_runtimes else _stop_ray
    stages = (("up", stack.up), ("etl", data_cli.etl), ("tune", baseline),
              ("gate", lambda: ml_cli.gate(promote=True)), ("export", ml_cli.export), ("serve", serving_cli.serve),
              ("predict", serving_cli.predict), ("canary", lambda: second_round(search, release_ray)),
              ("predict", serving_cli.predict))  # fmt: skip
    # Nothing waits for what it does not need: the ETL needs no stack, so `up` runs alongside it and the search
    # (the first stage that needs MLflow) waits for it; Ray's runtime starts while the ETL runs; the second search
    # starts once the first gate has read the first one (its challenger is "the last search's best") and runs
    # while the first model is exported and served.
    timings: dict[str, float] = {}
    wall = time.monotonic()
    alongside: _Alongside | None = None
    ray: _Alongside | None = None
    for name, command in stages:
        console.rule(styled(name, "bold"))
        start = time.monotonic()
        if name == "up":  # without its spinner: the ETL's shows meanwhile (one live display at a time)
            alongside, timings["up"] = _Alongside(command), 0.0
            console.print("SeaweedFS and MLflow start alongside the ETL (it needs neither); the search waits for them")
            continue
        if alongside is not None and name != "etl":
            timings["up"] = alongside.wait()
            alongside = None
            stack_cli.up_done()
        if name == "etl":
            from data_platform.spark import jvm_running, stop_session  # (pyspark: imported when the ETL runs)

            ray = _Alongside(_start_ray, stay=True)
            keep_spark = keep_runtimes or jvm_running()  # a session started before the demo is not its to stop
        elif name == "tune" and ray is not None:
            ray.wait()
        elif name == "export":
            search = _Alongside(second_search)
            console.print("the second search (ml_platform/search.yaml's budget) runs alongside export and serve")
        response = command()
        if name == "etl" and not keep_spark:
            _Alongside(stop_session)
        if name == "canary" and search is not None:
            timings["tune (2nd, alongside serve)"] = search.seconds
        timings[name if name not in timings else f"{name} (after canary)"] = round(time.monotonic() - start, 1)
    wall = round(time.monotonic() - wall, 1)
    (settings.state_dir() / "demo-timings.json").write_text(json.dumps({**timings, "wall": wall}, indent=2))
    console.rule(styled("demo finished", "bold green"))
    table = Table("stage", "seconds")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row(styled("total (wall; up ran alongside the etl)", "bold"), styled(f"{wall:.1f}", "bold"))
    console.print(table)
    console.print(
        f"Model {response['model_name']} version {response['model_version']} is serving v2 at "
        f"{settings.serve_url()}/v2/models/{response['model_name']}/infer (through the serving proxy)\n"
        f"MLflow UI: {settings.tracking_uri()} (log in with `task mlflow:credentials`)   "
        f"state dir: {settings.state_dir()}\n"
        "Try `task predict`, `task canary:status`, `task status`; stop everything with `task down`."
    )
