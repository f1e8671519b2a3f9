"""ETL stage: raw iris file -> validated, curated Parquet + `_manifest.json`; bad rows go to quarantine.

Nothing is dropped silently: every input line ends up either curated or quarantined with a reason, and the
manifest's counts add up to the input. Outputs are written to a staging dir and swapped in at the end, so a
failed run leaves the previous dataset intact and no partial one visible.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from data_platform.raw import SPECIES
from data_platform.spark import get_session
from platform_core.errors import DataError

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "label"
DATASET = "iris"
MANIFEST = "_manifest.json"
_CORRUPT = "_corrupt_record"


@dataclass
class EtlResult:
    curated_path: str
    quarantine_path: str
    manifest_path: str
    rows_in: int
    rows_curated: int
    rows_quarantined: int
    seconds: float


def curated_path(lake: str) -> str:
    return f"{lake.rstrip('/')}/curated/{DATASET}"


def quarantine_path(lake: str) -> str:
    return f"{lake.rstrip('/')}/quarantine/{DATASET}"


def _validate(raw: DataFrame) -> DataFrame:
    """Add typed columns and a `reason` (null for good rows). try_cast: Spark 4's ANSI cast raises on bad input."""
    typed = raw
    for name in FEATURES:
        typed = typed.withColumn(f"{name}__v", F.expr(f"try_cast(trim({name}) AS DOUBLE)"))
    species_to_label = F.create_map(*[x for i, s in enumerate(SPECIES) for x in (F.lit(s), F.lit(i))])
    typed = typed.withColumn(LABEL, species_to_label[F.trim(F.col("species"))])
    reason = F.when(F.col(_CORRUPT).isNotNull(), F.lit("wrong number of fields"))
    for name in FEATURES:
        reason = reason.when(F.col(f"{name}__v").isNull(), F.lit(f"{name} is missing or not a number"))
        reason = reason.when(F.col(f"{name}__v") <= 0, F.lit(f"{name} must be > 0"))
    reason = reason.when(F.col(LABEL).isNull(), F.lit("unknown species"))
    return typed.withColumn("reason", reason)


def run_etl(raw_path: str, lake: str) -> EtlResult:
    """Read the raw file at `raw_path`, publish curated + quarantined Parquet under `lake`."""
    start = time.monotonic()
    if not Path(raw_path).exists():
        raise DataError(f"raw input {raw_path} does not exist", "run `platform raw` or set PLATFORM_RAW_PATH")
    spark = get_session()
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in (*FEATURES, "species")] + [T.StructField(_CORRUPT, T.StringType())]
    )
    raw = spark.read.csv(raw_path, schema=schema, mode="PERMISSIVE", columnNameOfCorruptRecord=_CORRUPT)
    # Spark forbids queries on the corrupt-record column of an uncached CSV scan.
    checked = _validate(raw).cache()
    good = checked.where(F.col("reason").isNull()).select(
        *[F.col(f"{n}__v").alias(n) for n in FEATURES], F.col("species"), F.col(LABEL).cast("int")
    )
    bad = checked.where(F.col("reason").isNotNull()).select(
        *FEATURES, "species", F.col(_CORRUPT).alias("raw_line"), "reason"
    )
    rows_in, rows_good = checked.count(), good.count()
    rows_bad = rows_in - rows_good
    if rows_in == 0:
        raise DataError(f"raw input {raw_path} has no rows", "check the file")

    lake_dir = Path(lake)
    staging = lake_dir / "_staging" / uuid.uuid4().hex
    try:
        good.coalesce(1).write.parquet(str(staging / "curated"))
        bad.coalesce(1).write.parquet(str(staging / "quarantine"))
        manifest = {
            "dataset": DATASET,
            "source": str(raw_path),
            "source_sha256": hashlib.sha256(Path(raw_path).read_bytes()).hexdigest(),
            "rows_in": rows_in,
            "rows_curated": rows_good,
            "rows_quarantined": rows_bad,
            "features": list(FEATURES),
            "label": LABEL,
            "classes": list(SPECIES),
            "schema": json.loads(good.schema.json()),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "curated" / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _publish(staging / "curated", Path(curated_path(lake)))
        _publish(staging / "quarantine", Path(quarantine_path(lake)))
    finally:
        checked.unpersist()
        shutil.rmtree(staging, ignore_errors=True)
    return EtlResult(
        curated_path(lake),
        quarantine_path(lake),
        f"{curated_path(lake)}/{MANIFEST}",
        rows_in,
        rows_good,
        rows_bad,
        round(time.monotonic() - start, 1),
    )


def _publish(staged: Path, final: Path) -> None:
    """Swap a fully written dir into place: the old one is moved aside, never half-overwritten."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(lake: str) -> dict:
    path = Path(curated_path(lake)) / MANIFEST
    if not path.exists():
        raise DataError(f"no curated dataset at {curated_path(lake)}", "run the ETL first: `task etl`")
    return json.loads(path.read_text())
