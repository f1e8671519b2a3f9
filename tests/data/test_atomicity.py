"""A killed ETL (kill -9 while it writes its version) leaves the previous version in force and nothing partial
visible; the next run skips the leftovers and gc removes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_platform import lake as lake_store
from data_platform.etl import job_args, run_etl
from data_platform.generate import generate
from ml_platform.dataset import load_splits


def test_kill_9_midway_leaves_the_previous_version_in_force(spark, tmp_path):
    small = generate(tmp_path / "small.data", tmp_path / "contracts", "atom", rows=500, features=4, classes=2,
                     defect_rate=0.0)  # fmt: skip
    lake = str(tmp_path / "lake")
    first = run_etl(small["raw"], lake, small["contract"])
    big = generate(tmp_path / "big.data", tmp_path / "big-contracts", "atom", rows=10_000, features=4, classes=2,
                   defect_rate=0.0, seed=1)  # fmt: skip
    env = {**os.environ, "PLATFORM_CONTRACTS_DIR": str(tmp_path / "contracts"), "PLATFORM_SPARK_MASTER": "local[1]"}
    job = subprocess.Popen([sys.executable, "-m", "data_platform.etl", *job_args("atom", big["raw"], lake)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    partial = Path(lake_store.version_dir(lake, "atom", first.version + 1))
    try:
        deadline = time.monotonic() + 240
        while not partial.exists():  # the job has started writing its version: kill it there
            assert job.poll() is None, "the ETL finished before it could be killed; use more rows"
            assert time.monotonic() < deadline, "the ETL never started writing"
            time.sleep(0.05)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.kill()
        job.wait()
    assert not (partial / lake_store.MANIFEST).exists()
    assert lake_store.read_pointer(lake, "atom")["version"] == first.version
    splits = load_splits(lake, "atom")
    assert (splits.version, splits.content_hash) == (first.version, first.content_hash)
    assert len(splits.y_train) + len(splits.y_valid) + len(splits.y_test) == first.rows_curated
    assert [e.get("incomplete", False) for e in lake_store.list_versions(lake, "atom")] == [False, True]
    changed = tmp_path / "changed.data"
    changed.write_text("\n".join(Path(small["raw"]).read_text().split("\n")[:-100]) + "\n")
    newer = run_etl(str(changed), lake, small["contract"])
    assert newer.version == first.version + 2  # the crashed run's directory is never reused
    assert load_splits(lake, "atom").version == newer.version
    assert lake_store.gc(lake, "atom", keep=1) == [first.version, first.version + 1]
    assert [e["version"] for e in lake_store.list_versions(lake, "atom")] == [newer.version]
