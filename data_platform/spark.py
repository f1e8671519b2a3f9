"""One Spark session per process: start-up costs 12-20 s on 2 cores, so everything shares it.

This module is also the seam to PySpark's internals (tests/data/test_spark_seam.py fails naming the one an upgrade
removes): `SparkContext._active_spark_context` (is a JVM up already), `session._jvm` / `session._jsc` (Hadoop's
FileSystem with the job's own S3A settings, which PySpark exposes no other way).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from platform_core import settings

# Errors only: Spark's default profile prints start-up chatter and a native-hadoop warning on every run.
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def get_session(app_name: str = "platform-etl") -> SparkSession:
    # Without this Spark picks the machine's first interface, which may not exist offline.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # the CLI shows its own progress
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}")
        .config("spark.sql.shuffle.partitions", "4")  # small inputs; run_etl raises it with the input size
        .config("spark.driver.memory", settings.SPARK_DRIVER_MEMORY.get())  # local mode: driver = executor
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    if not os.environ.get("SPARK_MASTER_URL"):  # on a cluster the SparkApplication operator sets the master
        builder = builder.master(settings.SPARK_MASTER.get())
    if not jvm_running():
        with _stderr_to(settings.state_dir() / "logs" / "spark.log"):
            spark = builder.getOrCreate()
    else:
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """The JVM inherits this process's stderr when it starts: pointed at a log file for that moment, its
    banners ("Using incubator modules", "Setting default log level") and later chatter stay out of the CLI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def jvm_running() -> bool:
    """Whether this process already has a SparkContext (and so a JVM whose stderr is set)."""
    return SparkContext._active_spark_context is not None


def hadoop_path(uri: str, spark: SparkSession):
    """Spark's own filesystem for `uri` (S3A on a cluster) and the Hadoop Path: same endpoint and credentials
    as the job's writes."""
    path = spark._jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path


def read_utf8(stream, spark: SparkSession) -> str:
    """A Hadoop input stream's whole content as text."""
    return spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
