"""The Spark driver JVM's class-data archive (JDK AppCDS): Spark's ~15,000 classes parsed and verified once, then
mapped from one file by every later JVM.

A fresh local Spark process spends seconds loading and verifying classes before its first row; with the archive
the iris ETL in a fresh process took 3.9-4.7 s -> 2.3-3.0 s for the session start and 8.9-10.6 s -> 6.7-7.1 s for
its run (3 runs each, 2 cores). It is built once per checkout (the jars' paths), JDK and Spark version
(`./setup-env` runs data_platform/build_class_archive.py) by a real run of the sample ETL that dumps the classes
it loaded when its JVM exits (`-XX:ArchiveClassesAtExit`); that run is ~8 s slower, hence not a user's run. The
archive is written under a temporary name, started once by `java -version` (a truncated archive crashes the JVM
at start: measured) and only then renamed. One owned by another user or writable by others is never used (the
JVM would run the code in it). It depends only on the JDK and the jars, so it lives in a per-user cache
(PLATFORM_JVM_CACHE_DIR), not in a state dir.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from platform_core import settings

log = logging.getLogger(__name__)
# The JVM's [cds] log is on stdout by default: hundreds of "Skipping ...: Signed JAR" lines when it dumps, and a
# line for any archive it cannot use (then it runs without). Neither belongs in a user's output.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
SUFFIX = ".jsa"
UP_TO_DATE = "Spark class archive: up to date"
_CHECK_SECONDS = 60


def java_binary() -> Path | None:
    """The `java` that PySpark starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(os.path.realpath(found)) if found and os.path.exists(found) else None


def spark_jars() -> Path:
    import pyspark  # noqa: PLC0415 - only its location, where its jars are

    return Path(pyspark.__file__).parent / "jars"


def key(java: Path | None = None, jars: Path | None = None) -> str | None:
    """What the archive is valid for: the JDK (its java and libjvm files) and Spark's jars (paths, sizes and
    modification times: each checkout's venv has its own archive, and the JVM refuses one whose jars were
    reinstalled, as a new venv at the same path does, measured); None without a JDK."""
    java = java or java_binary()
    if java is None:
        return None
    jars = jars or spark_jars()
    digest = hashlib.sha256()
    for f in [java, *sorted((java.parent.parent / "lib").glob("*/libjvm.so"))]:
        st = f.stat()
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for jar in sorted(jars.glob("*.jar")):  # full paths: the JVM refuses an archive recorded from other jar paths
        st = jar.stat()
        digest.update(f"{jar}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cache_dir() -> Path | None:
    value = settings.JVM_CACHE_DIR.get()
    return None if value in ("", "off") else Path(value).expanduser()


def archive_path() -> Path | None:
    """Where this JDK's and Spark's archive is (whether or not it exists); None when the cache is off."""
    folder, k = cache_dir(), key()
    return folder / f"spark-{k}{SUFFIX}" if folder is not None and k is not None else None


def trusted(path: Path) -> bool:
    """A regular file and its folder owned by this user and writable by nobody else."""
    try:
        for p in (path, path.parent):
            st = p.lstat()
            if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def java_options() -> str:
    """The JVM options that map the archive, or "" when there is none to use (the JVM then starts as usual)."""
    path = archive_path()
    if path is None or not path.exists():
        return ""
    if not trusted(path):
        log.warning(
            "not using the class archive %s: owned by another user or writable by others (remove it, then "
            "task etl:class-archive)",
            path,
        )
        return ""
    return f"-XX:SharedArchiveFile={path} {QUIET}"


def starts(path: Path, java: Path | None = None) -> bool:
    """Whether a JVM starts with this archive: a damaged one crashes it at start, so it must never be renamed into
    place. (A JVM whose class path differs, as here, then runs without it: this checks the file, not its use.)"""
    java = java or java_binary()
    if java is None:
        return False
    # A crash writes hs_err_pid<N>.log into the working directory (and may dump core): both kept out of the user's.
    with tempfile.TemporaryDirectory(prefix="class-archive-check-") as scratch:
        command = [str(java), f"-XX:SharedArchiveFile={path}", *QUIET.split(), "-XX:-CreateCoredumpOnCrash",
                   f"-XX:ErrorFile={scratch}/hs_err_%p.log", "-version"]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, timeout=_CHECK_SECONDS, cwd=scratch)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0
