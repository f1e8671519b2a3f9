"""One Spark session per process: start-up costs 12-20 s on 2 cores, so everything shares it."""

from __future__ import annotations

import os
from pathlib import Path

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
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", settings.SPARK_DRIVER_MEMORY.get())  # local mode: driver = executor
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    if not os.environ.get("SPARK_MASTER_URL"):  # on a cluster the SparkApplication operator sets the master
        builder = builder.master(settings.SPARK_MASTER.get())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
