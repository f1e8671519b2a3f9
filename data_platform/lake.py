"""Versioned datasets in the lake and the commit protocol readers rely on.

Layout: `<lake>/curated/<dataset>/v=<n>/` holds the curated Parquet (one directory per split), the quarantine
(`_quarantine/`) and `_manifest.json`; `<lake>/curated/<dataset>/_latest` is a small JSON pointer. A run writes
its whole version first and the pointer last, in one write: a reader that follows only the pointer sees either
the previous version or the new one, never a half-written one. No directory is ever renamed, so the protocol is
the same on S3, where one PUT of the pointer object is atomic. Locally the pointer is written to a temp file and
`os.replace`d (the POSIX equivalent of that one PUT).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from platform_core.errors import DataError

MANIFEST = "_manifest.json"
POINTER = "_latest"
QUARANTINE = "_quarantine"


def dataset_root(lake: str, dataset: str) -> str:
    return f"{lake.rstrip('/')}/curated/{dataset}"


def version_dir(lake: str, dataset: str, version: int) -> str:
    return f"{dataset_root(lake, dataset)}/v={version}"


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme not in ("", "file")


def _local(uri: str) -> Path:
    return Path(urlparse(uri).path if uri.startswith("file:") else uri)


def write_text_atomic(uri: str, text: str, spark=None) -> None:
    """Replace the object at `uri` in one step: a reader sees the old content or the new, nothing between."""
    if is_remote(uri):
        # Through Spark's own Hadoop filesystem (same credentials as the job). S3A uploads on close():
        # a single PUT, which S3 makes visible atomically.
        fs, path = _spark_seam().hadoop_path(uri, spark)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()
        return
    target = _local(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _spark_seam():
    """PySpark's Hadoop access (data_platform.spark), imported only for s3a:// lakes: local readers of a
    manifest do not pay PySpark's import."""
    from data_platform import spark

    return spark


def _hadoop_read(uri: str, spark) -> str | None:
    fs, path = _spark_seam().hadoop_path(uri, spark)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        return _spark_seam().read_utf8(stream, spark)
    finally:
        stream.close()


def _hadoop_subdirs(uri: str, spark) -> list[str]:
    fs, path = _spark_seam().hadoop_path(uri, spark)
    return [st.getPath().getName() for st in fs.listStatus(path) if st.isDirectory()] if fs.exists(path) else []


def _read(uri: str, spark=None) -> str | None:
    if is_remote(uri):
        return _hadoop_read(uri, spark)
    path = _local(uri)
    return path.read_text() if path.is_file() else None


def _subdirs(uri: str, spark=None) -> list[str]:
    if is_remote(uri):
        return _hadoop_subdirs(uri, spark)
    path = _local(uri)
    return [p.name for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def _delete_dir(uri: str, spark=None) -> None:
    if is_remote(uri):
        fs, path = _spark_seam().hadoop_path(uri, spark)
        fs.delete(path, True)
    else:
        shutil.rmtree(_local(uri), ignore_errors=True)


def _versions_on_disk(lake: str, dataset: str, spark=None) -> list[int]:
    names = _subdirs(dataset_root(lake, dataset), spark)
    return sorted(int(n[2:]) for n in names if n.startswith("v=") and n[2:].isdigit())


def next_version(lake: str, dataset: str, spark=None) -> int:
    """One above every version directory, complete or not: a crashed run's leftovers are never reused."""
    return max(_versions_on_disk(lake, dataset, spark), default=0) + 1


def read_pointer(lake: str, dataset: str, spark=None) -> dict | None:
    text = _read(f"{dataset_root(lake, dataset)}/{POINTER}", spark)
    return json.loads(text) if text else None


def commit(lake: str, dataset: str, manifest: dict, spark=None) -> None:
    """Make `manifest`'s version the one readers see. The last write of a run."""
    pointer = {"dataset": dataset, "version": manifest["version"], "content_hash": manifest["content_hash"]}
    write_text_atomic(f"{dataset_root(lake, dataset)}/{POINTER}", json.dumps(pointer, indent=2) + "\n", spark)


def read_manifest(lake: str, dataset: str, version: int | None = None, spark=None) -> dict:
    """The manifest of the version the pointer names (or of `version`), with `path` set to its directory."""
    if version is None:
        pointer = read_pointer(lake, dataset, spark)
        if pointer is None:
            raise DataError(
                f"no published dataset {dataset!r} under {lake}", f"run the ETL first: `task etl` (dataset {dataset})"
            )
        version = pointer["version"]
    vdir = version_dir(lake, dataset, version)
    text = _read(f"{vdir}/{MANIFEST}", spark)
    if not text:
        raise DataError(f"version {version} of {dataset!r} has no manifest (incomplete run)", "re-run `task etl`")
    return {**json.loads(text), "path": vdir}


def list_versions(lake: str, dataset: str, spark=None) -> list[dict]:
    """Every version directory: its manifest (complete) or a stub marked incomplete (a run that did not finish)."""
    pointer = read_pointer(lake, dataset, spark) or {}
    out = []
    for v in _versions_on_disk(lake, dataset, spark):
        try:
            entry = read_manifest(lake, dataset, v, spark)
        except DataError:
            entry = {"version": v, "incomplete": True, "path": version_dir(lake, dataset, v)}
        out.append({**entry, "latest": v == pointer.get("version")})
    return out


def find_version(lake: str, dataset: str, content_hash: str, quarantine_hash: str, spark=None) -> dict | None:
    """A complete version holding exactly these curated and quarantined rows, if one exists (re-runs reuse it)."""
    for entry in list_versions(lake, dataset, spark):
        if entry.get("content_hash") == content_hash and entry.get("quarantine_hash") == quarantine_hash:
            return entry
    return None


def gc(lake: str, dataset: str, keep: int, spark=None) -> list[int]:
    """Delete all but the newest `keep` complete versions, and incomplete leftovers older than the newest complete
    one. The version the pointer names is never deleted."""
    if keep < 1:
        raise DataError(f"KEEP={keep} would delete the published version", "keep at least 1")
    versions = list_versions(lake, dataset, spark)
    complete = [e["version"] for e in versions if not e.get("incomplete")]
    newest = max(complete, default=0)
    pointed = (read_pointer(lake, dataset, spark) or {}).get("version")
    doomed = [v for v in complete[:-keep] if v != pointed]
    doomed += [e["version"] for e in versions if e.get("incomplete") and e["version"] < newest]
    for v in sorted(doomed):
        _delete_dir(version_dir(lake, dataset, v), spark)
    return sorted(doomed)
