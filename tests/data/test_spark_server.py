"""The long-lived local Spark Connect server (PLATFORM_SPARK_SERVER), through the README's commands: the ETL
through it publishes what the classic session publishes, a second run reuses it, nobody without its token gets
in, `task status` lists it and `task down` stops it.

The server is real (pyspark's own `sbin/start-connect-server.sh`), started by the first `task etl`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import psutil
import pyarrow.parquet as pq
import pytest

from data_platform import lake as lake_store
from data_platform.etl import run_etl
from data_platform.generate import generate
from platform_core import settings, stack
from tests import readme

pytestmark = pytest.mark.timeout(600)
COMPARED = ("content_hash", "quarantine_hash", "rows_in", "rows_curated", "rows_quarantined", "quarantine_by_reason",
            "rows_by_split", "class_counts", "column_stats")  # fmt: skip


def _quarantine(path: str) -> list[tuple]:
    table = pq.read_table(f"{path}/{lake_store.QUARANTINE}").to_pylist()
    return sorted((r["line"], r["reason"], r["column"] or "", r["raw_line"]) for r in table)


def _asks(port: int, token: str | None) -> str:
    """A Connect client with `token` (None: no token at all) asks the server for one row -> what it got."""
    code = (
        "from pyspark.sql import SparkSession\n"
        f"spark = SparkSession.builder.remote('sc://localhost:{port}').create()\n"
        "try:\n"
        "    print('ANSWERED', spark.range(1).collect())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, str(exc).splitlines()[0])\n"
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SPARK_CONNECT_AUTHENTICATE_TOKEN"}
    if token is not None:
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = token
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def _published(lake: str) -> dict:
    manifest = lake_store.read_manifest(lake, "srv")
    return {k: manifest[k] for k in COMPARED} | {"path": manifest["path"]}


def test_server_etl_equals_classic_and_is_guarded(spark, tmp_path, monkeypatch):
    side = generate(tmp_path / "srv.data", tmp_path / "contracts", "srv", rows=3000, features=5, classes=3,
                    defect_rate=0.03, seed=7)  # fmt: skip
    for key, value in {"PLATFORM_CONTRACTS_DIR": str(tmp_path / "contracts"), "PLATFORM_DATASET": "srv",
                       "PLATFORM_RAW_PATH": side["raw"], "PLATFORM_SPARK_MASTER": "local[2]"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    run_etl(lake=str(tmp_path / "lake-classic"))
    classic = _published(str(tmp_path / "lake-classic"))
    assert classic["rows_quarantined"] > 0 and classic["quarantine_by_reason"]["duplicate_key"]

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))  # the server's record: this state dir
    monkeypatch.setenv("COLUMNS", "200")  # `task status` prints a table: one row per line
    etl = readme.command("PLATFORM_SPARK_SERVER=true task etl")
    try:
        published, servers = [], []
        for lake in ("lake-a", "lake-b"):  # two lakes: the second run is not skipped as unchanged
            monkeypatch.setenv("PLATFORM_LAKE_DIR", str(tmp_path / lake))
            out = readme.run(etl).stdout
            assert "Traceback" not in out and "Warning" not in out, out[-3000:]
            published.append(_published(str(tmp_path / lake)))
            servers.append(stack.spark_server())
        record = servers[0]
        assert record and servers[1]["pid"] == record["pid"], f"the second run did not reuse the server: {servers}"
        for run in published:
            assert {k: run[k] for k in COMPARED} == {k: classic[k] for k in COMPARED}
            assert _quarantine(run["path"]) == _quarantine(classic["path"])

        # Guarded: loopback only, the token readable by its owner only, no answer without it.
        server = psutil.Process(record["pid"])
        listening = {c.laddr.ip for c in server.connections("inet") if c.status == psutil.CONN_LISTEN}
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
        assert stat.S_IMODE(settings.spark_server_file().stat().st_mode) == 0o600
        for token in (None, "not-the-token"):
            answer = _asks(record["port"], token)
            assert answer and not answer.startswith("ANSWERED"), answer
        assert _asks(record["port"], record["token"]).startswith("ANSWERED")  # refused for the token's sake only

        monkeypatch.setenv("PLATFORM_SPARK_DRIVER_MEMORY", "3g")  # not the heap the running server has
        monkeypatch.setenv("PLATFORM_LAKE_DIR", str(tmp_path / "lake-c"))  # a new lake: Spark is needed
        refused = readme.run(etl, expect_ok=False)
        assert refused.returncode != 0 and "task down" in refused.stdout and "Traceback" not in refused.stdout
        monkeypatch.delenv("PLATFORM_SPARK_DRIVER_MEMORY")

        status = readme.run(readme.command("task status")).stdout
        assert "spark connect server" in status and str(record["pid"]) in status, status
    finally:
        down = readme.run(readme.command("task down")).stdout
    assert "spark-connect" in down, down
    assert not psutil.pid_exists(record["pid"]) and not stack.spark_server()
