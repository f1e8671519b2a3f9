"""The PySpark internals data_platform/spark.py relies on are still there (fails naming the one an upgrade
removed)."""

from __future__ import annotations

from importlib.metadata import version

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
