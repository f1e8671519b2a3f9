"""One Spark session per process: start-up costs 12-20 s on 2 cores, so everything shares it.

This module is also the seam to PySpark's internals (tests/data/test_spark_seam.py fails naming the one an upgrade
removes): `SparkContext._active_spark_context` (is a JVM up already), `session._jvm` / `session._jsc` (Hadoop's
FileSystem with the job's own S3A settings, which PySpark exposes no other way; `first_line` reads a header
through it), `SparkContext._gateway.proc` (the JVM's process, waited for by `stop_jvm`).

With PLATFORM_SPARK_SERVER a local run's session is a Spark Connect client of one long-lived server instead of a
JVM of its own: pyspark's persistent local server (`spark.local.connect.reuse`, pyspark.sql.connect.local_server)
is started on first use through `sbin/start-connect-server.sh`, bound to 127.0.0.1, refusing calls without its
token; host, port, token and pid are in a discovery file (0600) kept in the state dir. Code here works with both
kinds of session: nothing outside this module touches the JVM.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyspark import SparkContext, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.utils import is_remote

from data_platform import class_archive
from platform_core import settings
from platform_core.errors import ConfigError

# Errors only: Spark's default profile prints start-up chatter and a native-hadoop warning on every run.
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# The ETL's generated code has methods far over the JVM's 8,000-byte JIT limit (the parse of a 22-column record:
# ~50 KB); without this flag HotSpot interprets them forever, which halved the parse's speed (measured).
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
# A batch job on a few cores: the parallel collector (throughput first) instead of G1, whose concurrent
# refinement and marking threads compete with the two task threads. Measured on the 1M-row parse in a fresh
# JVM: 15.1 s wall / 28 s of JVM CPU against 20.3 s / 38 s with G1 (same output; a warm JVM is equal); the
# whole 1M-row run 40.5 -> 34.5 s. Local runs only: a cluster's JVMs keep the operator's collector (two
# collector flags refuse to start).
GC_OPTIONS = "-XX:+UseParallelGC"
# For a small input the JVM's start and Spark's first plans are the run, and most of their CPU goes to the C2
# compiler: C1 alone (tiered compilation stopped at level 1) took 150-row runs from 22-30 s to 16-17 s of CPU
# (first ETL) and session start from 11-14 s to 7 s, but a 1M-row run from 79 s to 94 s (measured, 2 cores).
# Chosen when the session starts for an input known to be small; a JVM already running keeps its mode.
SMALL_INPUT_JIT = "-XX:TieredStopAtLevel=1"
SMALL_INPUT_BYTES = 8 << 20
# Whole-stage codegen is off for plans wider than this (default 100): the statistics aggregate has 5 per
# numeric column.
CODEGEN_MAX_FIELDS = "1000"
# A stage whose generated method is over the JIT's 8,000-byte limit runs without whole-stage codegen (Spark's
# default limit is 64 KB): the record parse as one method ran 3.3x slower (23 s vs 7 s of CPU for 1M rows x 22
# columns, measured) than as separately compiled expressions, even with JIT_OPTIONS.
HUGE_METHOD_LIMIT = "8000"
# The parse keeps a record's raw line only where its reason code is not null; Spark's PushFoldableIntoBranches
# rewrites `(CASE ... THEN k ... END) IS NOT NULL` into a second CASE of every check (THEN true ... ELSE false),
# which no subexpression elimination can share with the first: every good record ran all its checks twice (the
# second CASE 14% of the parse's profile samples; the warm-JVM parse at 1M 6.7 -> 5.2 s without the rule). Then
# the code is computed once and its null test read off it (test_spark_seam asserts that the raw line's test in
# the parse's optimized plan is the code itself). Only this session's plans.
EXCLUDED_RULES = "org.apache.spark.sql.catalyst.optimizer.PushFoldableIntoBranches"
# A server session a client left open (killed before its run's end) frees its cached blocks after this idle time.
SERVER_SESSION_TIMEOUT = "10m"
HEADER_BYTES = 1 << 20  # line 1 of a local file is read up to this size (a header, not a whole file without ends)
# Spark's unified memory defaults (spark.memory.*: 300 MiB reserved, fraction 0.6, storageFraction 0.5): cached
# blocks up to this share of the heap are safe from eviction by execution (joins, sorts, aggregates).
_RESERVED_HEAP = 300 << 20
_STORAGE_SHARE = 0.6 * 0.5
_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def get_session(app_name: str = "platform-etl", input_bytes: int | None = None, java_options: str = "") -> SparkSession:
    """The process's session, started if need be; `input_bytes` (when known) is the size of the input about to be
    read: below SMALL_INPUT_BYTES a new JVM compiles with C1 only (see SMALL_INPUT_JIT). A new local JVM maps the
    class archive when there is one (data_platform.class_archive); `java_options` replaces that choice."""
    # Without this Spark picks the machine's first interface, which may not exist offline.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cluster = bool(os.environ.get("SPARK_MASTER_URL"))  # the SparkApplication operator sets the master
    server = settings.SPARK_SERVER.get() and not cluster
    # The class archive fits the classic driver's class path, and C1 only suits a JVM that ends with its run.
    if not java_options and not cluster and not server and not jvm_running():
        java_options = class_archive.java_options()
    jvm_options = f"{JIT_OPTIONS} {GC_OPTIONS} {java_options}".strip()
    if input_bytes is not None and input_bytes <= SMALL_INPUT_BYTES and not server:
        jvm_options = f"{jvm_options} {SMALL_INPUT_JIT}"
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # the CLI shows its own progress
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} {jvm_options}")
        .config("spark.sql.shuffle.partitions", "4")  # small inputs; run_etl sizes it by the input
        .config("spark.sql.codegen.maxFields", CODEGEN_MAX_FIELDS)
        .config("spark.sql.codegen.hugeMethodLimit", HUGE_METHOD_LIMIT)
        .config("spark.sql.optimizer.excludedRules", EXCLUDED_RULES)
        .config("spark.driver.memory", settings.SPARK_DRIVER_MEMORY.get())  # local mode: driver = executor
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    if server:
        return _server_session(builder)
    if not cluster:
        builder = builder.master(settings.SPARK_MASTER.get())
    if not jvm_running():
        with _stderr_to(settings.state_dir() / "logs" / "spark.log"):
            spark = builder.getOrCreate()
    else:
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _server_session(builder) -> SparkSession:
    """A session of the long-lived local server, which is started first if none answers (its start-up options
    are the builder's: heap, JVM options, 127.0.0.1)."""
    path = settings.spark_server_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_server_heap()
    os.environ["SPARK_LOCAL_CONNECT_DISCOVERY"] = str(path)
    builder = (
        builder.remote(settings.SPARK_MASTER.get())
        .config("spark.local.connect.reuse", "true")
        .config("spark.local.connect.server.port", str(settings.SPARK_SERVER_PORT.get()))
        .config("spark.connect.session.manager.defaultSessionTimeout", SERVER_SESSION_TIMEOUT)
    )
    with warnings.catch_warnings():
        # A running server was started with the static options (heap, JVM options, bind address); a new session
        # only says, once per option, that it cannot set them again.
        warnings.filterwarnings("ignore", message="Failed to set spark\\.", category=UserWarning)
        return builder.getOrCreate()


def _check_server_heap() -> None:
    """A running server keeps the heap it was started with: a run asking for another one is refused, in one line,
    instead of silently running with the old one. (psutil and the stack module: imported here, for server runs
    only; the cluster's Spark image has neither.)"""
    import psutil

    from platform_core import stack

    record = stack.spark_server()
    try:
        argv = psutil.Process(record["pid"]).cmdline() if record else []
    except psutil.Error:
        return
    heaps = [a.removeprefix("-Xmx") for a in argv if a.startswith("-Xmx")]
    wanted = settings.SPARK_DRIVER_MEMORY.get()
    if heaps and heaps[-1].lower() != wanted.lower():
        raise ConfigError(
            f"the Spark server (pid {record['pid']}) runs with a {heaps[-1]} heap, PLATFORM_SPARK_DRIVER_MEMORY "
            f"asks for {wanted}",
            "stop it with `task down` (the next run starts it anew), or unset PLATFORM_SPARK_DRIVER_MEMORY",
        )


def end_run(spark: SparkSession) -> None:
    """A run is over: a server session is closed, which frees what the run kept on the server (its checkpoints
    are not released one by one there); a classic session stays for the process's next run."""
    if is_remote():
        spark.stop()


def parallelism(spark: SparkSession) -> int:
    """Task slots of the session: a server session has no SparkContext, so local masters are read as Spark reads
    them (local -> 1, local[N] / local[N,F] -> N, local[*] -> the machine's cores)."""
    if not is_remote():
        return spark.sparkContext.defaultParallelism
    return master_slots(settings.SPARK_MASTER.get())


def master_slots(master: str) -> int:
    """Task slots of a local master string (anything else: 1, the least a run has)."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if match is None or match[1] is None:
        return 1
    return (os.cpu_count() or 1) if match[1] == "*" else max(1, int(match[1]))


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


def stop_session() -> None:
    """Stop the process's SparkContext, if one runs (executors, block manager, cached blocks): what the
    interpreter's exit does otherwise, for a caller done with Spark. The JVM itself ends with the process."""
    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()


def _jvm_process():
    """The JVM's Popen (PySpark keeps it on the gateway), or None without a JVM."""
    return getattr(SparkContext._gateway, "proc", None)


def jvm_pid() -> int | None:
    """The process id of this process's Spark JVM (None without one)."""
    proc = _jvm_process()
    return proc.pid if proc is not None else None


def stop_jvm(timeout: float = 300) -> int | None:
    """Stop the context, then end the JVM the way the interpreter's exit does (its stdin closes) and wait for it:
    the JVM's own exit work (a class archive dump) is then done when this returns -> its exit code (None without
    a JVM). Reaches the launcher's process through `SparkContext._gateway.proc`."""
    proc = _jvm_process()
    stop_session()
    if proc is None:
        return None
    if proc.stdin is not None:
        proc.stdin.close()
    return proc.wait(timeout=timeout)


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


def first_line(uri: str, spark: SparkSession) -> str | None:
    """Line 1 of the file at `uri` (a URI as Spark's _metadata.file_path gives it, percent-encoded), read through
    Spark's own filesystem (local or S3A alike); None for an empty file. Line ends as Spark's text reader has
    them: \\n, \\r\\n or \\r."""
    if uri.startswith("file:"):  # a local file: read here, without a Spark job or the JVM
        # newline="": a line ends at \n, \r\n or \r, as in Spark; undecodable bytes become U+FFFD, as in Java.
        with open(unquote(urlsplit(uri).path), encoding="utf-8", errors="replace", newline="") as f:
            line = f.readline(HEADER_BYTES)
        return line.rstrip("\r\n") if line else None
    if is_remote():  # a server session has no JVM here: one small job
        rows = spark.read.text(uri).limit(1).collect()
        return rows[0]["value"] if rows else None
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(uri))
    stream = path.getFileSystem(spark._jsc.hadoopConfiguration()).open(path)
    try:
        return jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8")).readLine()
    finally:
        stream.close()


def byte_size(text: str, unit: int = 1) -> int | None:
    """A size as Spark's settings take it ("4194304", "4MB", "128m", "2g"; `unit` bytes each without a suffix) ->
    bytes, or None when it is not one."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:([kmgt])b?|(b)?)\s*", text.lower())
    return int(match[1]) * (_UNITS[match[2] or match[3]] if match[2] or match[3] else unit) if match else None


def heap_bytes(memory: str) -> int | None:
    """A JVM heap size as spark.driver.memory takes it ("2g", "1536m", "2048": MiB without a unit) -> bytes, or
    None when it is not one (the JVM then refuses it itself)."""
    return byte_size(memory, 1 << 20)


def keep_level(kept_bytes: int | None) -> StorageLevel:
    """Where a kept frame of about `kept_bytes` lives: in the heap when it fits the storage share execution
    cannot evict (PLATFORM_SPARK_DRIVER_MEMORY's), else on local disk only. A larger one kept in memory fills
    the old generation with rows, spills the rest anyway, and leaves sorts and aggregates less room: at 10M rows
    (1.9 GB kept in a 2 GB heap), three alternating pairs, 174 / 199 / 178 s in memory against 139 / 173 / 173 s
    on disk (GC 22-44 s of task time against 6 s; the tally and the curated write 5-10 s faster each); at 1M
    (0.2 GB) memory was faster, 40 / 44 s against 44 / 49 s; at 3M equal (70 s). Same output. Unknown sizes
    (remote input, Parquet) stay in memory, spilling to disk."""
    heap = heap_bytes(settings.SPARK_DRIVER_MEMORY.get())
    if kept_bytes is None or heap is None or kept_bytes <= (heap - _RESERVED_HEAP) * _STORAGE_SHARE:
        return StorageLevel.MEMORY_AND_DISK
    return StorageLevel.DISK_ONLY


def materialize(frame: DataFrame, kept_bytes: int | None = None,
                eager: bool = True) -> tuple[DataFrame, Callable[[], None]]:  # fmt: skip
    """`frame` computed once into Spark's block manager (`keep_level(kept_bytes)`) -> (a DataFrame reading those
    blocks, a function that frees them). Unlike `persist()`, the new DataFrame's plan is a leaf: every later
    action plans in milliseconds, where a persisted plan with the ETL's wide expressions was re-canonicalized
    (compared with the cached one) at every action, seconds each. `eager=False` leaves the computing to the
    caller's first action on the result, which then keeps the blocks as it goes (one pass instead of a count
    and then that action). The release reaches the checkpointed RDD through the JVM plan (`LogicalRDD.rdd`),
    which PySpark does not expose."""
    level = keep_level(kept_bytes)
    if level == StorageLevel.MEMORY_AND_DISK:  # localCheckpoint's own level: the only one PySpark 3.5 (the
        done = frame.localCheckpoint(eager=eager)  # cluster's image) has, without a storageLevel parameter
    else:
        done = frame.localCheckpoint(eager=eager, storageLevel=level)
    if is_remote():  # freed with its server session (end_run): the server keeps a checkpoint until then
        return done, lambda: None
    rdd = done._jdf.queryExecution().logical().rdd()
    return done, lambda: rdd.unpersist(False)
