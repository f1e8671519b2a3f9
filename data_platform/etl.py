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
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import functions as F

from data_platform import lake as lake_store
from data_platform.checks import (
    REASONS,
    SPLITS,
    codes,
    curated_columns,
    duplicates,
    finalize,
    parse,
    quarantine_columns,
    split_cuts,
)
from data_platform.contract import Contract, load_contract, local_raw_path
from data_platform.inputs import display, open_input
from data_platform.raw import SAMPLE_DATASET, write_raw_iris
from data_platform.spark import end_run, get_session, parallelism
from platform_core import settings
from platform_core.errors import DataError, PlatformError

# Bump when a change to parsing or checks changes the curated rows of the same input: it is part of the content
# hash, so old versions are not mistaken for new ones.
JOB_VERSION = "2"
_CHUNK = 1 << 20
_EXAMPLES = 3  # bad records quoted by the too-many-bad-rows error
_QUOTED = 60  # characters of each one's raw line


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


def _local_bytes(files: list[str]) -> int | None:
    """The input's size when every file is local (None for remote inputs: unknown without listing them)."""
    if any(lake_store.is_remote(f) for f in files):
        return None
    return sum(os.path.getsize(f) for f in files)


def _size_partitions(spark, files: list[str]) -> None:
    """Local inputs: shuffle partitions for what is shuffled, the key hashes (~1/5 of the raw bytes), one per
    PLATFORM_SPARK_PARTITION_MB of it and at least one per core (a local run has no more workers than cores).
    Remote inputs keep the session's (the cluster's sparkConf)."""
    if any(lake_store.is_remote(f) for f in files):
        return
    shuffled = sum(os.path.getsize(f) for f in files) // 5
    cores = parallelism(spark)
    partitions = max(cores, -(-shuffled // (settings.SPARK_PARTITION_MB.get() << 20)))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))


def _hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def run_etl(raw: str | None = None, lake: str | None = None, dataset: str | None = None, valid: float | None = None,
            test: float | None = None) -> EtlResult:  # fmt: skip
    """The ETL stage: validate `raw` (default: PLATFORM_RAW_PATH, else the contract's raw server) against the
    dataset's contract and publish the result under `lake` (default PLATFORM_LAKE_DIR); see the module doc. The
    sample dataset's raw file is written first when its default path is empty."""
    start = time.monotonic()
    contract = load_contract(dataset)
    if raw is None:
        raw = local_raw_path(contract)
        if contract.dataset == SAMPLE_DATASET and not Path(raw).exists():
            write_raw_iris(raw)
    lake = lake or settings.lake_dir()
    valid = settings.SPLIT_VALID.get() if valid is None else valid
    test = settings.SPLIT_TEST.get() if test is None else test
    cuts = split_cuts(valid, test)
    files = source_files(raw)
    if unchanged := _unchanged_latest(lake, contract, files, valid, test, cuts):
        return _result(unchanged, reused=True, start=start)
    spark = get_session(input_bytes=_local_bytes(files))
    try:
        _size_partitions(spark, files)
        source = open_input(spark, files, contract)  # a header lacking contract columns fails here, before any row
        parsed, release = parse(source, contract)  # the first action: every record parsed once, kept
    except BaseException:
        end_run(spark)  # a server session ends with its run, failed or not (the finally below covers the rest)
        raise
    release_dupes = None
    try:
        dupes, release_dupes = duplicates(parsed, source, contract)
        records = finalize(parsed, dupes, contract, cuts)
        tally = _tally(records, contract)
        rows_in = sum(t["rows"] for t in tally)
        if rows_in == 0:
            raise DataError(f"raw input {raw} has no records", "check the file and the contract's header setting")
        names = codes(contract)
        by_reason = {r: sum(t["rows"] for t in tally if t["code"] is not None and names[t["code"]][0] == r)
                     for r in REASONS}  # fmt: skip
        quarantined = sum(by_reason.values())
        _check_quarantine_rate(contract, rows_in, quarantined, by_reason, records, source)
        curated = records.where(F.col("code").isNull()).select(*curated_columns(contract))
        by_split = {s: sum(t["rows"] for t in tally if t["code"] is None and t["split"] == s) for s in SPLITS}
        schema = [(f.name, f.dataType.simpleString()) for f in curated.schema.fields]
        content_hash = _hash({
            "job": JOB_VERSION, "schema": schema, "classes": contract.classes, "cuts": cuts,
            "rows": sorted((g, *v) for g, v in _sums(tally, lambda t: t["split"] if t["code"] is None else None)
                           .items()),
        })  # fmt: skip
        quarantine_hash = _hash({
            "columns": QUARANTINE_FORMAT,
            "rows": sorted(_sums(tally, lambda t: names[t["code"]][0] if t["code"] is not None else None).items()),
        })  # fmt: skip
        existing = lake_store.find_version(lake, contract.dataset, content_hash, quarantine_hash, spark)
        if existing:
            if not existing["latest"]:
                lake_store.commit(lake, contract.dataset, existing, spark)
            version, reused = existing["version"], True
        else:
            version, reused = lake_store.next_version(lake, contract.dataset, spark), False
            vdir = lake_store.version_dir(lake, contract.dataset, version)
            # No dictionary encoding: the typed values are mostly distinct doubles, which never fit a dictionary;
            # parquet-mr would build one per column chunk and then fall back (the write's CPU, measured).
            curated.write.option("parquet.enable.dictionary", "false").partitionBy("split").parquet(vdir)
            records.where(F.col("code").isNotNull()).select(*quarantine_columns(source, contract)).write.parquet(
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
                "class_counts": _class_counts(tally, contract), "column_stats": _column_stats(tally, contract),
                "content_hash": content_hash, "quarantine_hash": quarantine_hash,
            }  # fmt: skip
            lake_store.write_text_atomic(f"{vdir}/{lake_store.MANIFEST}", json.dumps(manifest, indent=2), spark)
            lake_store.commit(lake, contract.dataset, manifest, spark)  # the commit point: last write of the run
    finally:
        release()
        if release_dupes is not None:
            release_dupes()
        end_run(spark)
    return EtlResult(
        dataset=contract.dataset, version=version, path=lake_store.version_dir(lake, contract.dataset, version),
        reused=reused, rows_in=rows_in, rows_curated=rows_in - quarantined, rows_quarantined=quarantined,
        quarantine_by_reason={r: n for r, n in by_reason.items() if n}, rows_by_split=by_split,
        content_hash=content_hash, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip


def _unchanged_latest(lake: str, contract: Contract, files: list[str], valid: float, test: float,
                      cuts) -> dict | None:  # fmt: skip
    """The published version's manifest when it was made by this job version from byte-identical local files,
    the same contract and the same split: its rows are what a new run would produce, so no Spark starts (the
    way make or DVC skip a step whose inputs did not change). Remote inputs and lakes always run."""
    if lake_store.is_remote(lake) or any(lake_store.is_remote(f) for f in files):
        return None
    try:
        manifest = lake_store.read_manifest(lake, contract.dataset)
    except DataError:
        return None
    if (manifest.get("job_version"), manifest.get("contract", {}).get("sha256")) != (JOB_VERSION, contract.sha256):
        return None
    split = manifest.get("split", {})
    if (split.get("valid"), split.get("test"), list(split.get("buckets") or [])) != (valid, test, list(cuts)):
        return None
    recorded = manifest.get("sources") or []
    if [r.get("bytes") for r in recorded] != [os.path.getsize(f) for f in files]:
        return None
    if [r.get("sha256") for r in recorded] != [sha256_file(f) for f in files]:  # read only when the sizes agree
        return None
    return manifest


def _result(manifest: dict, reused: bool, start: float) -> EtlResult:
    return EtlResult(
        dataset=manifest["dataset"], version=manifest["version"], path=manifest["path"], reused=reused,
        rows_in=manifest["rows_in"], rows_curated=manifest["rows_curated"],
        rows_quarantined=manifest["rows_quarantined"],
        quarantine_by_reason={r: n for r, n in manifest["quarantine_by_reason"].items() if n},
        rows_by_split=manifest["rows_by_split"], content_hash=manifest["content_hash"],
        seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip


# The quarantine table's columns are part of its hash: a version written before the line column existed is not
# reused for the same input (its quarantine would lack the lines).
QUARANTINE_FORMAT = ["source", "line", "raw_line", "reason", "column"]


def _tally(records, contract: Contract) -> list[dict]:
    """One aggregate over every record: rows and digest sums per (code, split, class), and for the good ones the
    numeric columns' statistics. At most (codes x splits x classes) small rows reach the driver.

    The 64-bit digests are summed as their high and low 32-bit halves (plain longs, no overflow below 2^31
    rows): exact, and much cheaper than decimal sums."""
    numeric = [i for i, c in enumerate(contract.columns) if c.numeric]
    # As SQL text: ~100 aggregates built through the Column API cost thousands of calls into the JVM.
    aggs = ["count(*) AS rows"]
    for d in ("da", "db"):
        aggs += [f"sum(shiftright({d}, 32)) AS {d}_hi", f"sum({d} & 4294967295) AS {d}_lo"]
    # The mean as sum / count, not avg (whose buffer carries a second count: 20 fewer buffer fields per row for 20
    # columns; a group's mean is the same double); integers summed as doubles, as avg does (no long overflow).
    # A good record has a value in every required column (else it would be missing_value or malformed_number):
    # their non-null count is the group's rows, not counted again.
    for i in numeric:
        aggs += [f"min(v{i}) AS min{i}", f"max(v{i}) AS max{i}", f"sum(CAST(v{i} AS DOUBLE)) AS sum{i}",
                 f"var_samp(v{i}) AS var{i}"]  # fmt: skip
        if not contract.columns[i].required:
            aggs.append(f"count(v{i}) AS n{i}")
    klass = F.when(F.col("code").isNull(), F.col("class_index")).alias("class_index")
    rows = records.groupBy("code", "split", klass).agg(*[F.expr(a) for a in aggs]).collect()
    out = []
    for r in rows:
        t = r.asDict()
        t["a"] = (t.pop("da_hi") << 32) + t.pop("da_lo")
        t["b"] = (t.pop("db_hi") << 32) + t.pop("db_lo")
        out.append(t)
    return out


def _sums(tally: list[dict], group) -> dict:
    """{group: (rows, sum a, sum b)} over the tally rows whose group is not None (a and b as decimal strings)."""
    out: dict = {}
    for t in tally:
        g = group(t)
        if g is not None:
            rows, a, b = out.get(g, (0, 0, 0))
            out[g] = (rows + t["rows"], a + t["a"], b + t["b"])
    return {g: (rows, str(a), str(b)) for g, (rows, a, b) in out.items()}


def _check_quarantine_rate(contract: Contract, rows_in: int, quarantined: int, by_reason: dict[str, int], records,
                           source) -> None:  # fmt: skip
    rate = quarantined / rows_in
    if rate > contract.max_quarantine_rate:
        worst = ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items(), key=lambda rn: -rn[1]) if n)
        first = records.where(F.col("code").isNotNull()).orderBy("rid").limit(_EXAMPLES)
        examples = "; ".join(_example(r) for r in first.select(*quarantine_columns(source, contract)).collect())
        raise DataError(
            f"{quarantined} of {rows_in} records ({rate:.1%}) break the contract of {contract.dataset!r} ({worst}), "
            f"above its maxQuarantineRate {contract.max_quarantine_rate:.1%}; nothing was published; first: "
            f"{examples}",
            f"fix the input (or, if it is really fine, raise maxQuarantineRate in {contract.path})",
        )


def _example(row) -> str:
    """`file:line reason (column) 'raw line'`: the raw text quoted literally (repr), cut to a bounded length."""
    name = display(row["source"]).rstrip("/").rsplit("/", 1)[-1]
    text = row["raw_line"] or ""
    quoted = repr(text[:_QUOTED]) + ("..." if len(text) > _QUOTED else "")
    column = f" in {row['column']}" if row["column"] else ""
    return f"{name}:{row['line']} {row['reason']}{column} {quoted}"


def _class_counts(tally: list[dict], contract: Contract) -> dict[str, dict[str, int]]:
    counts = {s: dict.fromkeys(contract.classes, 0) for s in SPLITS}
    for t in tally:
        if t["code"] is None:
            counts[t["split"]][contract.classes[t["class_index"]]] += t["rows"]
    return counts


def _column_stats(tally: list[dict], contract: Contract) -> dict[str, dict]:
    """Min, max, mean, sample stddev and non-null count of each numeric column over the curated rows, merged from
    the per-group moments (Chan's parallel formula, as Spark merges partial aggregates)."""
    good = [t for t in tally if t["code"] is None]
    stats = {}
    for i, col in enumerate(contract.columns):
        if not col.numeric:
            continue
        # (count, sum, sample variance, min, max) of each group with a value in this column
        counts = [(t.get(f"n{i}", t["rows"]), t) for t in good]
        groups = [(k, t[f"sum{i}"], t[f"var{i}"], t[f"min{i}"], t[f"max{i}"]) for k, t in counts if k]
        n = sum(k for k, *_ in groups)
        mean = sum(total for _, total, *_ in groups) / n if n else None
        m2 = sum((v or 0.0) * (k - 1) + k * (total / k - mean) ** 2 for k, total, v, _, _ in groups) if n else None
        stats[col.name] = {"min": min((low for *_, low, _ in groups), default=None),
                           "max": max((high for *_, high in groups), default=None), "mean": mean,
                           "stddev": math.sqrt(m2 / (n - 1)) if n > 1 else None, "non_null": n}  # fmt: skip
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
