"""Build the Spark JVM's class archive (data_platform/class_archive.py) unless it is current:
`python -m data_platform.build_class_archive [--force] [--quiet]`, run by `./setup-env`."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time

from data_platform.class_archive import QUIET, SUFFIX, UP_TO_DATE, archive_path, cache_dir, starts, trusted

log = logging.getLogger(__name__)
_RECORD_SECONDS = 600
_KEPT = 3
_LOG = "build.log"  # in the cache dir: what a failed build printed


def build(force: bool = False) -> str:
    """Make the archive for this JDK and Spark unless it exists -> one line saying what happened. Never raises for
    a machine that cannot build one: the platform runs without it, only slower to start."""
    path = archive_path()
    if path is None:
        return "Spark class archive: off (PLATFORM_JVM_CACHE_DIR=off) or no JDK found"
    if path.exists() and trusted(path) and not force:
        os.utime(path)  # in use: not among the oldest that a build of another checkout removes
        return f"{UP_TO_DATE} ({path})"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        return f"Spark class archive: not built, {path.parent} is not writable ({exc.strerror})"
    start = time.monotonic()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="class-archive-") as state:
            env = {**os.environ, "PLATFORM_STATE_DIR": state, "PLATFORM_LAKE_DIR": "", "PLATFORM_RAW_PATH": "",
                   "PLATFORM_DATASET": "iris"}  # fmt: skip
            command = [sys.executable, "-m", "data_platform.build_class_archive", "--record", str(tmp)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_RECORD_SECONDS)
        if done.returncode != 0 or not tmp.exists() or not starts(tmp):
            log.warning("class archive run failed (exit %s): %s", done.returncode, done.stderr[-2000:])
            return f"Spark class archive: not built (the recording run failed, see {_LOG}; Spark starts without it)"
        tmp.chmod(0o644)
        os.replace(tmp, path)  # the only way an archive gets its final name: complete and checked
    except subprocess.TimeoutExpired:
        return f"Spark class archive: not built (the recording run took over {_RECORD_SECONDS} s)"
    finally:
        tmp.unlink(missing_ok=True)
    # Other checkouts' archives stay (each venv has its own jar paths); beyond _KEPT, the oldest go.
    archives = sorted(path.parent.glob(f"spark-*{SUFFIX}"), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in archives[_KEPT:]:
        stale.unlink(missing_ok=True)
    size = path.stat().st_size >> 20
    return f"Spark class archive: built in {time.monotonic() - start:.0f} s ({size} MiB, {path})"


def _record(target: str) -> None:
    """The recording run (a child process of `build`): the sample ETL in a JVM that dumps its classes to `target`
    when it exits, waited for here so the file is complete when this process ends."""
    from data_platform.etl import run_etl  # noqa: PLC0415 - the recording run only
    from data_platform.spark import get_session, stop_jvm  # noqa: PLC0415

    get_session(java_options=f"-XX:ArchiveClassesAtExit={target} {QUIET}")
    run_etl()
    stop_jvm()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="data_platform.build_class_archive", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when an archive exists")
    parser.add_argument("--quiet", action="store_true", help="print nothing when the archive is up to date")
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record:
        _record(args.record)
        return
    folder = cache_dir()
    if folder is not None and folder.parent.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        logging.basicConfig(filename=folder / _LOG, level=logging.INFO, format="%(asctime)s %(message)s")
    line = build(force=args.force)
    if not (args.quiet and line.startswith(UP_TO_DATE)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
