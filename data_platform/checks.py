"""The contract as Spark column expressions: parse every raw record, give each bad one a reason, assign splits.

Every record keeps its raw text, so a quarantined row can be traced to the exact input line. All decisions are
functions of one record (plus, for duplicates, of the records sharing its key), never of row order or
partitioning: the same input gives the same curated rows and the same split however Spark schedules it.
Spark 4 runs in ANSI mode, where a plain cast of a malformed string raises, hence `try_cast` throughout.
"""

from __future__ import annotations

import re

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from data_platform.contract import Column, Contract
from platform_core.errors import ConfigError, DataError

# In order of precedence: a record gets the first reason that applies to it.
REASONS = (
    "field_count",
    "missing_value",
    "malformed_number",
    "non_finite",
    "out_of_range",
    "invalid_value",
    "unknown_label",
    "duplicate_key",
)
SPLITS = ("train", "valid", "test")
SPLIT_BUCKETS = 10_000
KEY_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur inside a delimited field
_RANGE_OK = {
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
}


def split_cuts(valid: float, test: float) -> tuple[int, int]:
    """Bucket bounds: bucket < first -> train, < second -> valid, else test (buckets: row hash mod 10 000)."""
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise ConfigError(
            f"split fractions valid={valid} test={test} leave no training rows",
            "set PLATFORM_SPLIT_VALID and PLATFORM_SPLIT_TEST to shares > 0 whose sum is < 1",
        )
    return round(SPLIT_BUCKETS * (1 - valid - test)), round(SPLIT_BUCKETS * (1 - test))


def read_records(spark: SparkSession, files: list[str], contract: Contract) -> DataFrame:
    """Raw files -> one row per record: source, raw_line, and one trimmed string token per contract column."""
    names = contract.names
    if contract.input_format == "parquet":
        frame = spark.read.parquet(*files)
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DataError(f"parquet input lacks contract columns {missing}", f"fix the input or {contract.path}")
        return frame.select(
            F.col("_metadata.file_path").alias("source"),
            F.to_json(F.struct(*names)).alias("raw_line"),
            F.lit(len(names)).alias("n_fields"),
            *[F.trim(F.col(n).cast("string")).alias(f"{n}__tok") for n in names],
        )
    lines = spark.read.text(files).select(
        F.col("_metadata.file_path").alias("source"),
        F.regexp_replace("value", "\r$", "").alias("raw_line"),  # CRLF files
    )
    lines = lines.where(F.trim("raw_line") != "")  # blank lines (UCI files end with one) are not records
    if contract.header:
        lines = lines.where(F.col("raw_line") != contract.delimiter.join(names))
    # Split once into a column: an expression reused per field would split each line once per column.
    lines = lines.select("source", "raw_line", F.split("raw_line", re.escape(contract.delimiter), -1).alias("tokens"))
    return lines.select(
        "source",
        "raw_line",
        F.size("tokens").alias("n_fields"),
        *[F.trim(F.get("tokens", i)).alias(f"{n}__tok") for i, n in enumerate(names)],
    )


def _typed(col: Column) -> SparkColumn:
    tok = F.col(f"{col.name}__tok")
    if col.type == "number":
        return F.expr(f"try_cast(`{col.name}__tok` AS DOUBLE)")
    if col.type == "integer":
        return F.expr(f"try_cast(`{col.name}__tok` AS BIGINT)")
    return tok


def _column_checks(col: Column, label: str) -> list[tuple[SparkColumn, str]]:
    """(failure condition, reason) for one column, in precedence order."""
    tok, value = F.col(f"{col.name}__tok"), F.col(f"{col.name}__v")
    missing = tok.isNull() | (tok == "")
    checks = [(missing, "missing_value")] if col.required else []
    present = ~missing
    if col.numeric:
        checks.append((present & value.isNull(), "malformed_number"))
    if col.type == "number":
        checks.append((F.isnan(value) | value.isin(float("inf"), float("-inf")), "non_finite"))
    for key, bound in col.ranges:
        checks.append((present & ~_RANGE_OK[key](value, F.lit(bound)), "out_of_range"))
    if col.allowed is not None:
        checks.append((present & ~tok.isin(*col.allowed), "unknown_label" if col.name == label else "invalid_value"))
    return checks


def validate(records: DataFrame, contract: Contract, valid: float, test: float) -> DataFrame:
    """Records -> typed columns + reason (null: curated) + column + row_hash + split + digest of the raw record."""
    cut_train, cut_valid = split_cuts(valid, test)
    typed = records.select("*", *[_typed(c).alias(f"{c.name}__v") for c in contract.columns])
    checks = [(F.col("n_fields") != len(contract.columns), "field_count", None)]
    for col in contract.columns:
        checks += [(cond, reason, col.name) for cond, reason in _column_checks(col, contract.label)]
    reason, column = F.when(checks[0][0], F.lit(checks[0][1])), F.when(checks[0][0], F.lit(checks[0][2]))
    for cond, why, name in checks[1:]:
        reason, column = reason.when(cond, F.lit(why)), column.when(cond, F.lit(name))
    # The key as written (trimmed tokens): exactly reproducible by any other engine, unlike a float's text form.
    key = F.concat_ws(KEY_SEPARATOR, *[F.coalesce(F.col(f"{n}__tok"), F.lit("")) for n in contract.key_columns])
    record = F.concat_ws(KEY_SEPARATOR, *[F.coalesce(F.col(f"{n}__tok"), F.lit("")) for n in contract.names])
    checked = typed.select("*", reason.alias("row_reason"), column.alias("column"), key.alias("key"),
                           record.alias("record"))  # fmt: skip
    # Duplicates are judged among valid records only. Exact copies (same tokens): keep one. Records that share a
    # key but differ: there is no way to tell which is right, so all of them go to quarantine. Neither rule
    # depends on which copy Spark sees first.
    by_key = Window.partitionBy("key").orderBy(F.col("row_reason").isNotNull(), "raw_line", "source")
    valid_record = F.when(F.col("row_reason").isNull(), F.xxhash64("record"))
    by_key_all = Window.partitionBy("key")
    conflict = F.min(valid_record).over(by_key_all) != F.max(valid_record).over(by_key_all)
    duplicate = F.when(F.col("row_reason").isNull() & ((F.row_number().over(by_key) > 1) | conflict),
                       F.lit("duplicate_key"))  # fmt: skip
    row_hash = F.conv(F.substring(F.sha2("key", 256), 1, 15), 16, 10).cast("bigint")
    bucket = F.pmod(row_hash, F.lit(SPLIT_BUCKETS))
    split = F.when(bucket < cut_train, "train").when(bucket < cut_valid, "valid").otherwise("test")
    index = F.array_position(F.array(*[F.lit(c) for c in contract.classes]), F.col(f"{contract.label}__tok")) - 1
    # Only what the tallies and the two writes need: this is what gets cached.
    return checked.select(
        "source",
        "raw_line",
        *[f"{c.name}__v" for c in contract.columns],
        index.cast("int").alias("class_index"),
        "column",
        F.coalesce("row_reason", duplicate).alias("reason"),
        row_hash.alias("row_hash"),
        split.alias("split"),
        # Two independent 64-bit digests of the raw record; summed (as decimals: no overflow) they fingerprint a
        # set of rows whatever its order. Only Spark needs to reproduce them, so its fast xxhash64 will do.
        F.xxhash64("raw_line").cast("decimal(38,0)").alias("digest_a"),
        F.xxhash64("raw_line", F.lit(1)).cast("decimal(38,0)").alias("digest_b"),
    ).withColumn("column", F.when(F.col("reason") == "duplicate_key", F.lit(None)).otherwise(F.col("column")))


def curated_columns(contract: Contract) -> list[SparkColumn]:
    """The curated table: every contract column typed, the class index, the row hash and the split."""
    return [
        *[F.col(f"{c.name}__v").alias(c.name) for c in contract.columns],
        "class_index",
        "row_hash",
        "split",
    ]


QUARANTINE_COLUMNS = ["source", "raw_line", "reason", "column"]
