"""The Spark JVM's class archive (data_platform/class_archive.py): keyed by what it depends on, used only when it is
whole and nobody else can write it, never put in place when the run that records it fails, and really mapped by
the Spark JVM when it exists."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from data_platform import build_class_archive, class_archive
from data_platform import spark as seam


def _jdk(root: Path) -> tuple[Path, Path]:
    java = root / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    (root / "jdk" / "lib" / "server").mkdir(parents=True)
    (root / "jdk" / "lib" / "server" / "libjvm.so").write_bytes(b"x" * 10)
    jars = root / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"a" * 100)
    return java, jars


def test_the_key_follows_the_jdk_and_the_jars(tmp_path):
    java, jars = _jdk(tmp_path)
    first = class_archive.key(java, jars)
    assert first == class_archive.key(java, jars)
    (jars / "spark-sql.jar").write_bytes(b"b")
    second = class_archive.key(java, jars)
    (jars / "spark-sql.jar").write_bytes(b"bb")  # a new jar, then the same name with another size
    third = class_archive.key(java, jars)
    (tmp_path / "jdk" / "lib" / "server" / "libjvm.so").write_bytes(b"y" * 11)  # another JVM build
    fourth = class_archive.key(java, jars)
    jar = jars / "spark-sql.jar"
    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 10**9))  # reinstalled: same size, new mtime
    fifth = class_archive.key(java, jars)
    assert len({first, second, third, fourth, fifth}) == 5


def _place(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PLATFORM_JVM_CACHE_DIR", str(tmp_path / "cache"))
    path = class_archive.archive_path()
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"archive")
    path.chmod(0o644)
    return path


def test_an_archive_others_can_write_is_not_used(tmp_path, monkeypatch):
    path = _place(tmp_path, monkeypatch)
    assert class_archive.java_options() == f"-XX:SharedArchiveFile={path} {class_archive.QUIET}"
    path.chmod(0o666)
    assert class_archive.java_options() == "", "a world-writable archive was mapped"
    path.chmod(0o644)
    path.parent.chmod(0o770)
    assert class_archive.java_options() == "", "an archive in a group-writable folder was mapped"
    path.parent.chmod(0o700)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.jsa")
    (tmp_path / "elsewhere.jsa").write_bytes(b"archive")
    assert class_archive.java_options() == "", "a symlink was followed"
    monkeypatch.setenv("PLATFORM_JVM_CACHE_DIR", "off")
    assert class_archive.archive_path() is None and class_archive.java_options() == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_archive_of_another_user_is_not_used(tmp_path, monkeypatch):
    path = _place(tmp_path, monkeypatch)
    os.chown(path, 65534, 65534)
    assert class_archive.java_options() == ""


def test_a_failed_recording_leaves_no_archive(tmp_path, monkeypatch):
    """The recording run fails (a heap size the JVM refuses): the build says so in one line, nothing is named
    as the archive and no partial file is left."""
    monkeypatch.setenv("PLATFORM_JVM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PLATFORM_SPARK_DRIVER_MEMORY", "not-a-size")
    line = build_class_archive.build()
    assert line.startswith("Spark class archive: not built (the recording run failed"), line
    assert list((tmp_path / "cache").iterdir()) == []


def _built() -> Path:
    path = class_archive.archive_path()
    if path is None or not path.exists():
        if os.environ.get("CI"):  # ./setup-env builds it: CI must not skip what it is meant to check
            pytest.fail(f"no class archive at {path}: ./setup-env should have built it")
        pytest.skip(
            f"no class archive at {path} (./setup-env or `python -m data_platform.build_class_archive` builds it)"
        )
    return path


def test_a_damaged_archive_is_caught_before_it_gets_its_name(tmp_path):
    built = _built()
    assert class_archive.starts(built)
    before = set(Path.cwd().glob("hs_err_pid*.log"))
    cut = tmp_path / "cut.jsa"
    with built.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(built.stat().st_size // 2))
    assert not class_archive.starts(cut), "a JVM started with half an archive: the check would let it in"
    assert set(Path.cwd().glob("hs_err_pid*.log")) == before, "the crashed check left its JVM error log in the checkout"


def test_the_spark_jvm_maps_the_archive(spark):
    built = _built()
    maps = Path(f"/proc/{seam.jvm_pid()}/maps").read_text()
    assert str(built) in maps, "the session's JVM did not map the class archive"


def test_the_module_prints_one_line_when_up_to_date(tmp_path):
    built = _built()
    done = subprocess.run([sys.executable, "-m", "data_platform.build_class_archive"], capture_output=True, text=True,
                          env={**os.environ, "PLATFORM_JVM_CACHE_DIR": str(built.parent)}, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout == f"Spark class archive: up to date ({built})\n", done
    assert not stat.S_IMODE(built.stat().st_mode) & 0o022
