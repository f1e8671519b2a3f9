"""The PySpark internals data_platform/spark.py relies on are still there (fails naming the one an upgrade
removed)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from data_platform import spark as seam


def test_the_jvm_handles_the_lake_uses_are_there(spark, tmp_path):
    assert seam.jvm_running(), f"pyspark {version('pyspark')}: SparkContext._active_spark_context is gone"
    (tmp_path / "note.txt").write_text("héllo")
    fs, path = seam.hadoop_path(str(tmp_path / "note.txt"), spark)
    assert fs.exists(path), f"pyspark {version('pyspark')}: session._jvm / _jsc no longer reach Hadoop"
    stream = fs.open(path)
    try:
        assert seam.read_utf8(stream, spark) == "héllo"
    finally:
        stream.close()


def test_the_jvm_process_is_reachable(spark):
    pid = seam.jvm_pid()
    assert pid, f"pyspark {version('pyspark')}: SparkContext._gateway.proc is gone (jvm_pid / stop_jvm need it)"
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert command[0].endswith(b"java"), f"SparkContext._gateway.proc is {command[:2]}, not the JVM"
