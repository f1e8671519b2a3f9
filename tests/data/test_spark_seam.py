"""The PySpark internals data_platform/spark.py relies on are still there (fails naming the one an upgrade
removed)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

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


def test_the_local_connect_server_surface_is_there(tmp_path):
    """PLATFORM_SPARK_SERVER relies on pyspark's persistent local Connect server: the reuse opt-in of the session
    builder, the discovery file named by SPARK_LOCAL_CONNECT_DISCOVERY (host, port, token, pid: read by
    `platform status`) and the `--stop` entry point, whose "Stopped" line `platform down` reads."""
    import inspect
    import os
    import subprocess
    import sys

    from pyspark.sql import session
    from pyspark.sql.connect import local_server

    assert '"spark.local.connect.reuse"' in inspect.getsource(session), "the reuse opt-in key is gone"
    assert "SPARK_LOCAL_CONNECT_DISCOVERY" in inspect.getsource(local_server.Discovery)
    saved = inspect.getsource(local_server.ServerLauncher._await_ready)
    assert all(f'"{k}"' in saved for k in ("host", "port", "token", "pid")), "the discovery record changed"
    stopped = inspect.getsource(local_server.main)
    assert 'print("Stopped' in stopped, f"pyspark {version('pyspark')}: `--stop` no longer says Stopped"
    env = {**os.environ, "SPARK_LOCAL_CONNECT_DISCOVERY": str(tmp_path / "none.json")}
    out = subprocess.run([sys.executable, "-m", "pyspark.sql.connect.local_server", "--stop"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("No running"), (out.stdout, out.stderr)


def test_a_server_session_counts_the_task_slots_of_its_master():
    import os

    assert [seam.master_slots(m) for m in ("local", "local[3]", "local[2,4]", "spark://h:7077")] == [1, 3, 2, 1]
    assert seam.master_slots("local[*]") == os.cpu_count()


def test_line_1_of_a_local_file_ends_where_sparks_text_reader_ends_it(tmp_path):
    """Read in Python for file: URIs (no Spark job, no JVM): \\n, \\r\\n and \\r end a line, undecodable bytes become
    U+FFFD as in Java's reader, a byte order mark is left to the header mapping, an empty file has no line 1."""
    cases = {"lf": b"a,b\nx", "crlf": b"a,b\r\nx", "cr": b"a,b\rx", "only": b"a,b", "bom": b"\xef\xbb\xbfa,b\n",
             "bad": b"a,\xffb\n", "space dir/x%y": b"a,b\n"}  # fmt: skip
    expected = {"bom": "\ufeffa,b", "bad": "a,\ufffdb"}
    for name, content in cases.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        assert seam.first_line(path.as_uri(), None) == expected.get(name, "a,b"), name
    (tmp_path / "empty").write_bytes(b"")
    assert seam.first_line((tmp_path / "empty").as_uri(), None) is None
    (tmp_path / "long").write_bytes(b"x" * (seam.HEADER_BYTES + 10) + b"\nrow")  # bounded: no whole-file read
    assert len(seam.first_line((tmp_path / "long").as_uri(), None)) == seam.HEADER_BYTES


def test_the_parse_plans_every_check_once(spark, tmp_path, monkeypatch):
    """The parse keeps the raw line where the reason code is not null. Spark's optimizer rule
    PushFoldableIntoBranches would turn that null test into a second CASE of every check, evaluated again for
    every record (the parse 6.7 -> 5.2 s at 1M without it); spark.EXCLUDED_RULES names it. Fails when an
    upgrade renames the rule or otherwise duplicates the checks in the parse's optimized plan."""
    from data_platform import checks
    from data_platform.contract import load_contract
    from data_platform.inputs import open_input
    from data_platform.raw import write_raw_iris

    contract = load_contract("iris")
    raw = open_input(spark, [str(write_raw_iris(tmp_path / "iris.data"))], contract)
    planned = []

    def capture(frame, *args, **kwargs):
        planned.append(frame._jdf.queryExecution().optimizedPlan())
        raise StopIteration  # the plan is all this test needs: no job runs

    monkeypatch.setattr(checks, "materialize", capture)
    with pytest.raises(StopIteration):
        checks.parse(raw, contract)
    top = planned[0].projectList()
    aliases = [top.apply(i) for i in range(top.size()) if top.apply(i).getClass().getSimpleName() == "Alias"]
    by_name = {a.name(): a.child().sql() for a in aliases}
    # Where the null test reads the code itself, code generation computes it once (a common subexpression).
    assert by_name["code"] in by_name["raw_line"], by_name["raw_line"][:300]
    assert "THEN true" not in by_name["raw_line"], by_name["raw_line"][:300]
    assert spark.conf.get("spark.sql.optimizer.excludedRules") == seam.EXCLUDED_RULES
