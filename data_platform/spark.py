"""One Spark session per process: start-up costs 12-20 s on 2 cores, so everything shares it."""

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
    if SparkContext._active_spark_context is None:
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
