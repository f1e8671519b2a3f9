"""ETL stage: raw files + contract -> a new, versioned curated dataset (or the existing one, if nothing changed).

Every record ends up either curated (typed, with its split) or quarantined (raw line + reason); the manifest's
counts add up to the input. Above the contract's maximum quarantine rate the run fails before it writes
anything. Rows never travel to the driver: only aggregates (counts, sums of row digests, column statistics) do.

The same entry point runs locally (`platform etl`) and on Kubernetes (the SparkApplication runs this module with
the arguments `job_args` builds), so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import functions as F

from data_platform import lake as lake_store
from data_platform.checks import (
    QUARANTINE_COLUMNS,
    REASONS,
    SPLITS,
    curated_columns,
    read_records,
    split_cuts,
    validate,
)
from data_platform.contract import Contract, load_contract
from data_platform.raw import SAMPLE_DATASET, write_raw_iris
from data_platform.spark import get_session
from platform_core import settings
from platform_core.errors import DataError, PlatformError

# Bump when a change to parsing or checks changes the curated rows of the same input: it is part of the content
# hash, so old versions are not mistaken for new ones.
JOB_VERSION = "2"
_CHUNK = 1 << 20


@dataclass
class EtlResult:
    dataset: str
    version: int
    path: str
    reused: bool
    rows_in: int
    rows_curated: int
    rows_quarantined: int
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    rows_by_split: dict[str, int] = field(default_factory=dict)
    content_hash: str = ""
    seconds: float = 0.0


def source_files(raw: str) -> list[str]:
    """A file, a directory of files, or a glob -> the sorted input files (hidden/underscore files skipped)."""
    if lake_store.is_remote(raw):
        return [raw]  # Spark lists remote prefixes itself
    path = Path(raw)
    candidates = sorted(path.iterdir()) if path.is_dir() else [Path(p) for p in sorted(glob.glob(raw))]
    files = [str(p) for p in candidates if p.is_file() and not p.name.startswith((".", "_"))]
    if not files:
        raise DataError(f"raw input {raw} does not exist or holds no files", "write it or set PLATFORM_RAW_PATH")
    return files


def sha256_file(path: str) -> str:
    """Streamed in 1 MiB chunks: raw files can be larger than memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sources(files: list[str]) -> list[dict]:
    if any(lake_store.is_remote(f) for f in files):
        return [{"path": f, "sha256": None} for f in files]  # hashed by the object store (ETag), not re-read here
    return [{"path": str(Path(f).resolve()), "bytes": os.path.getsize(f), "sha256": sha256_file(f)} for f in files]


def _size_partitions(spark, files: list[str]) -> None:
    """One shuffle partition per PLATFORM_SPARK_PARTITION_MB of local input, at least 4: the key window sorts
    a partition at a time, and 4 of them ran out of a 2g heap at 10M rows. Remote inputs keep the session's."""
    if any(lake_store.is_remote(f) for f in files):
        return
    size = sum(os.path.getsize(f) for f in files)
    partitions = max(4, -(-size // (settings.SPARK_PARTITION_MB.get() << 20)))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))


def _hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def run_etl(raw: str | None = None, lake: str | None = None, dataset: str | None = None, valid: float | None = None,
            test: float | None = None) -> EtlResult:  # fmt: skip
    """The ETL stage: validate `raw` (default PLATFORM_RAW_PATH) against the dataset's contract and publish the
    result under `lake` (default PLATFORM_LAKE_DIR); see the module doc. The sample dataset's raw file is written
    first when its default path is empty."""
    start = time.monotonic()
    contract = load_contract(dataset)
    if raw is None:
        raw = settings.raw_path()
        if contract.dataset == SAMPLE_DATASET and not Path(raw).exists():
            write_raw_iris(raw)
    lake = lake or settings.lake_dir()
    valid = settings.SPLIT_VALID.get() if valid is None else valid
    test = settings.SPLIT_TEST.get() if test is None else test
    cuts = split_cuts(valid, test)
    files = source_files(raw)
    spark = get_session()
    _size_partitions(spark, files)
    checked = validate(read_records(spark, files, contract), contract, valid, test)
    # Spilled to disk rather than recomputed: counting, statistics and both writes reuse the parsed rows.
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        tally = _tally(checked)
        rows_in = sum(t["rows"] for t in tally)
        if rows_in == 0:
            raise DataError(f"raw input {raw} has no records", "check the file and the contract's header setting")
        by_reason = {r: sum(t["rows"] for t in tally if t["reason"] == r) for r in REASONS}
        quarantined = sum(by_reason.values())
        _check_quarantine_rate(contract, rows_in, quarantined, by_reason)
        curated = checked.where(F.col("reason").isNull()).select(*curated_columns(contract))
        by_split = {s: sum(t["rows"] for t in tally if t["reason"] is None and t["split"] == s) for s in SPLITS}
        schema = [(f.name, f.dataType.simpleString()) for f in curated.schema.fields]
        content_hash = _hash({
            "job": JOB_VERSION, "schema": schema, "classes": contract.classes, "cuts": cuts,
            "rows": sorted((t["split"], t["rows"], t["a"], t["b"]) for t in tally if t["reason"] is None),
        })  # fmt: skip
        quarantine_hash = _hash(sorted((t["reason"], t["rows"], t["a"], t["b"]) for t in tally if t["reason"]))
        existing = lake_store.find_version(lake, contract.dataset, content_hash, quarantine_hash, spark)
        if existing:
            if not existing["latest"]:
                lake_store.commit(lake, contract.dataset, existing, spark)
            version, reused = existing["version"], True
        else:
            version, reused = lake_store.next_version(lake, contract.dataset, spark), False
            vdir = lake_store.version_dir(lake, contract.dataset, version)
            curated.write.partitionBy("split").parquet(vdir)
            checked.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS).write.parquet(
                f"{vdir}/{lake_store.QUARANTINE}"
            )
            manifest = {
                "dataset": contract.dataset, "version": version, "job_version": JOB_VERSION,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "contract": {"path": contract.path, "sha256": contract.sha256, "version": contract.version},
                "sources": _sources(files),
                "features": contract.features, "label": contract.label, "classes": list(contract.classes),
                "key": contract.key_columns, "schema": schema,
                "split": {"valid": valid, "test": test, "buckets": cuts, "by": "sha256(row key) mod 10000"},
                "rows_in": rows_in, "rows_curated": rows_in - quarantined, "rows_quarantined": quarantined,
                "rows_by_split": by_split, "quarantine_by_reason": by_reason,
                "class_counts": _class_counts(curated, contract), "column_stats": _column_stats(curated, contract),
                "content_hash": content_hash, "quarantine_hash": quarantine_hash,
            }  # fmt: skip
            lake_store.write_text_atomic(f"{vdir}/{lake_store.MANIFEST}", json.dumps(manifest, indent=2), spark)
            lake_store.commit(lake, contract.dataset, manifest, spark)  # the commit point: last write of the run
    finally:
        checked.unpersist()
    return EtlResult(
        dataset=contract.dataset, version=version, path=lake_store.version_dir(lake, contract.dataset, version),
        reused=reused, rows_in=rows_in, rows_curated=rows_in - quarantined, rows_quarantined=quarantined,
        quarantine_by_reason={r: n for r, n in by_reason.items() if n}, rows_by_split=by_split,
        content_hash=content_hash, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip


def _tally(checked) -> list[dict]:
    """Row counts and digest sums per (reason, split): at most 3 + 8 small rows reach the driver."""
    rows = (
        checked.groupBy("reason", "split")
        .agg(F.count("*").alias("rows"), F.sum("digest_a").alias("a"), F.sum("digest_b").alias("b"))
        .collect()
    )
    return [{**r.asDict(), "a": str(r["a"]), "b": str(r["b"])} for r in rows]


def _check_quarantine_rate(contract: Contract, rows_in: int, quarantined: int, by_reason: dict[str, int]) -> None:
    rate = quarantined / rows_in
    if rate > contract.max_quarantine_rate:
        worst = ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items(), key=lambda rn: -rn[1]) if n)
        raise DataError(
            f"{quarantined} of {rows_in} records ({rate:.1%}) break the contract of {contract.dataset!r} ({worst}), "
            f"above its maxQuarantineRate {contract.max_quarantine_rate:.1%}; nothing was published",
            f"fix the input (or, if it is really fine, raise maxQuarantineRate in {contract.path})",
        )


def _class_counts(curated, contract: Contract) -> dict[str, dict[str, int]]:
    counts = {s: dict.fromkeys(contract.classes, 0) for s in SPLITS}
    for row in curated.groupBy("split", "class_index").count().collect():
        counts[row["split"]][contract.classes[row["class_index"]]] = row["count"]
    return counts


def _column_stats(curated, contract: Contract) -> dict[str, dict]:
    numeric = [c.name for c in contract.columns if c.numeric]
    aggs = []
    for n in numeric:
        aggs += [F.min(n), F.max(n), F.avg(n), F.stddev(n), F.count(n)]
    values = curated.agg(*aggs).first() if aggs else []
    stats = {}
    for i, n in enumerate(numeric):
        lo, hi, mean, std, count = values[5 * i : 5 * i + 5]
        stats[n] = {"min": lo, "max": hi, "mean": mean, "stddev": std, "non_null": count}
    return stats


def job_args(dataset: str, raw: str, lake: str) -> list[str]:
    """The job's arguments: built here for the local run and for the rendered SparkApplication alike."""
    return ["--dataset", dataset, "--raw", raw, "--lake", lake]


def main(argv: list[str] | None = None, quiet: bool = False) -> EtlResult:
    parser = argparse.ArgumentParser(prog="data_platform.etl", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--lake", required=True)
    args = parser.parse_args(argv)
    result = run_etl(args.raw, args.lake, args.dataset)
    if not quiet:
        print(json.dumps(result.__dict__), flush=True)
    return result


if __name__ == "__main__":
    try:
        main()
    except PlatformError as exc:  # one line, as from the CLI: the driver log of a cluster run stays readable
        print(f"ETL failed: {exc}", file=sys.stderr)
        sys.exit(1)
