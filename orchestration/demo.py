"""`platform demo`: every stage end to end on the local stack, through the same commands a user types (each
calls its stage's public function), with a timing table at the end."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable

from rich.table import Table

from data_platform import cli as data_cli
from inference_service import cli as serving_cli
from ml_platform import cli as ml_cli
from platform_core import cli as stack_cli
from platform_core import settings
from platform_core.bundle import CHALLENGER
from platform_core.progress import console, styled


def second_round() -> None:
    """A second, longer search (PLATFORM_DEMO_SECOND_SEED, 4x the rounds) through the gate; a passing challenger
    goes out as a 10% canary that the automatic analysis promotes or rolls back. A rejected one ends the demo with
    the first model serving."""
    from ml_platform.gate import GateRejected
    from ml_platform.search_config import load

    first = load(None).with_overrides()
    ml_cli.tune(seed=settings.DEMO_SECOND_SEED.get(), max_rounds=first.max_rounds * 4)  # more rounds per trial
    try:
        ml_cli.gate(promote=False)
    except GateRejected as exc:
        console.print(
            styled(f"the second model did not pass the gate ({exc.message}); the first keeps serving", "yellow")
        )
        return
    serving_cli.canary_start(alias=CHALLENGER, percent=10)
    serving_cli.canary_auto(load=True)


log = logging.getLogger(__name__)


def _warm(what: str, start: Callable[[], object], stay: bool = False) -> threading.Event:
    """Start something a later stage needs in a background thread; the event is set when it is up. A failure
    is only logged: the stage that needs it starts it again itself and reports the error the usual way.
    `stay`: the thread lives on until the process ends. Ray starts its raylet and GCS with the parent-death
    signal (PR_SET_PDEATHSIG), which the kernel sends when the *thread* that started them ends: a warm-up
    thread that returned would take the Ray runtime (and with it this process) down."""
    ready = threading.Event()

    def body() -> None:
        try:
            start()
        except Exception:  # noqa: BLE001 - the stage itself reports it
            log.warning("warming up %s failed; its stage starts it", what, exc_info=True)
        ready.set()
        if stay:
            threading.Event().wait()

    threading.Thread(target=body, name=f"warm-{what}", daemon=True).start()
    return ready


def _spark_for_the_etl() -> None:
    from data_platform.contract import load_contract, local_raw_path
    from data_platform.spark import get_session

    raw = local_raw_path(load_contract())
    # The same JVM options the ETL would pick for this input (a missing sample file is written small).
    get_session(input_bytes=os.path.getsize(raw) if os.path.exists(raw) else 0)


def _ray_for_the_search() -> None:
    from ml_platform.tune import init_ray

    init_ray()


def run() -> None:
    """End to end: up, ETL, tune, gate, export, serve v1; a second search, gate, canary at 10%, automatic analysis
    (promote or roll back), predict. Leaves the stack running."""
    stages = (("up", stack_cli.up), ("etl", data_cli.etl), ("tune", ml_cli.tune),
              ("gate", lambda: ml_cli.gate(promote=True)), ("export", ml_cli.export), ("serve", serving_cli.serve),
              ("predict", serving_cli.predict), ("canary", second_round),
              ("predict", serving_cli.predict))  # fmt: skip
    # What a stage needs starts one stage earlier: Spark's JVM while `up` waits for its services (the ETL needs
    # no stack), Ray's runtime while the ETL runs. A stage waits for its warm-up before it starts.
    warming = {"etl": _warm("spark", _spark_for_the_etl)}
    timings: dict[str, float] = {}
    for name, command in stages:
        console.rule(styled(name, "bold"))
        start = time.monotonic()
        if name in warming:
            warming.pop(name).wait()
        if name == "etl":
            warming["tune"] = _warm("ray", _ray_for_the_search, stay=True)
        response = command()
        timings[name if name not in timings else f"{name} (after canary)"] = round(time.monotonic() - start, 1)
    (settings.state_dir() / "demo-timings.json").write_text(json.dumps(timings, indent=2))
    console.rule(styled("demo finished", "bold green"))
    table = Table("stage", "seconds")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row(styled("total", "bold"), styled(f"{sum(timings.values()):.1f}", "bold"))
    console.print(table)
    console.print(
        f"Model {response['model_name']} version {response['model_version']} is serving v2 at "
        f"{settings.serve_url()}/v2/models/{response['model_name']}/infer (through the serving proxy)\n"
        f"MLflow UI: {settings.tracking_uri()} (log in with `task mlflow:credentials`)   "
        f"state dir: {settings.state_dir()}\n"
        "Try `task predict`, `task canary:status`, `task status`; stop everything with `task down`."
    )
