"""Natural single-node peers of the Spark ETL for `bench_etl.py`: the same curated rows written the way an expert
would use each engine (typed CSV read, filters, duplicates by GROUP BY key joined back), and the floor.

They rely on the benchmark's generated data being canonically formatted (a typed read loses a token's text, so
"1.50" and "1.5" compare equal here and not in the platform's ETL); the benchmark checks that every engine wrote
the same curated rows (counts per split, the sum of row hashes, the sum of a feature).
"""

from __future__ import annotations

import hashlib
import time

from data_platform.checks import KEY_SEPARATOR, split_cuts
from data_platform.contract import Contract

_OPS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_CUTS = split_cuts(0.15, 0.15)


def _sql_type(kind: str) -> str:
    return {"number": "DOUBLE", "integer": "BIGINT", "string": "VARCHAR"}[kind]


def duckdb_natural(contract: Contract, raw: str, out: str) -> dict:
    """DuckDB: typed read_csv (unparseable and short lines go to its rejects table), one WHERE for the checks,
    GROUP BY key (count, min and max of a row hash) joined back, one COPY partitioned by split."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"SET temp_directory = '{out}/tmp'")
    start = time.monotonic()
    columns = "{" + ", ".join(f"'{c.source}': '{_sql_type(c.type)}'" for c in contract.columns) + "}"
    good = []
    for c in contract.columns:
        col = f'"{c.source}"'
        if c.required:
            good.append(f"{col} IS NOT NULL")
        if c.type == "number":
            good.append(f"isfinite({col})")
        good += [f"{col} {_OPS[k]} {b}" for k, b in c.ranges]
        if c.allowed is not None:
            good.append(f"{col} IN ({', '.join(repr(v) for v in c.allowed)})")
    key = ", ".join(f'"{contract.column(k).source}"' for k in contract.key_columns)
    key_text = " || chr(31) || ".join(f'CAST("{contract.column(k).source}" AS VARCHAR)' for k in contract.key_columns)
    every = ", ".join(f'"{c.source}"' for c in contract.columns)
    typed = ", ".join(f'"{c.source}" AS {c.name}' for c in contract.columns)
    classes = ", ".join(repr(c) for c in contract.classes)
    con.execute(f"""CREATE TEMP TABLE g AS SELECT *, hash({every}) AS h FROM read_csv('{raw}', header=true,
                    delim='{contract.delimiter}', quote='', escape='', columns={columns}, store_rejects=true)
                    WHERE {" AND ".join(good)}""")
    con.execute(f"CREATE TEMP TABLE k AS SELECT {key}, count(*) AS n, min(h) = max(h) AS same FROM g GROUP BY {key}")
    con.execute(f"""COPY (
        WITH kept AS (SELECT g.* FROM g JOIN k USING ({key}) WHERE k.n = 1
                      UNION ALL SELECT DISTINCT g.* FROM g JOIN k USING ({key}) WHERE k.n > 1 AND k.same),
             hashed AS (SELECT *, ('0x' || substr(sha256({key_text}), 1, 15))::BIGINT AS row_hash FROM kept)
        SELECT {typed}, list_position([{classes}], "{contract.column(contract.label).source}") - 1 AS class_index,
               row_hash, CASE WHEN row_hash % 10000 < {_CUTS[0]} THEN 'train' WHEN row_hash % 10000 < {_CUTS[1]}
               THEN 'valid' ELSE 'test' END AS split FROM hashed
        ) TO '{out}/curated' (FORMAT PARQUET, PARTITION_BY (split))""")
    return {"seconds": time.monotonic() - start, "curated_dir": f"{out}/curated"}


def polars_natural(contract: Contract, raw: str, out: str) -> dict:
    """Polars lazy: typed scan_csv (unparseable values become null and fail the checks), one filter, group_by key
    joined back, sha256 of the key for the split (no native sha256: hashlib over the key column)."""
    import polars as pl

    start = time.monotonic()
    kinds = {"number": pl.Float64, "integer": pl.Int64, "string": pl.String}
    schema = {c.source: kinds[c.type] for c in contract.columns}
    lf = pl.scan_csv(raw, separator=contract.delimiter, has_header=True, schema=schema, quote_char=None,
                     ignore_errors=True, truncate_ragged_lines=True)  # fmt: skip
    checks = []
    for c in contract.columns:
        col = pl.col(c.source)
        if c.required:
            checks.append(col.is_not_null())
        if c.type == "number":
            checks.append(col.is_finite())
        ops = {"minimum": col.__ge__, "maximum": col.__le__, "exclusiveMinimum": col.__gt__,
               "exclusiveMaximum": col.__lt__}  # fmt: skip
        checks += [ops[k](b) for k, b in c.ranges]
        if c.allowed is not None:
            checks.append(col.is_in(list(c.allowed)))
    key = [contract.column(k).source for k in contract.key_columns]
    good = lf.filter(pl.all_horizontal(checks)).with_columns(pl.struct(list(schema)).hash().alias("h"))
    keys = good.group_by(key).agg(pl.len().alias("n"), (pl.col("h").min() == pl.col("h").max()).alias("same"))
    kept = good.join(keys.filter(pl.col("same")), on=key).unique(subset=key, keep="any")

    def row_hash(keys: pl.Series) -> pl.Series:
        return pl.Series([int(hashlib.sha256(k.encode()).hexdigest()[:15], 16) for k in keys], dtype=pl.Int64)

    key_text = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator=KEY_SEPARATOR)
    bucket = pl.col("row_hash") % 10_000
    curated = kept.with_columns(key_text.map_batches(row_hash, return_dtype=pl.Int64).alias("row_hash")).select(
        *[pl.col(c.source).alias(c.name) for c in contract.columns],
        (pl.col(contract.column(contract.label).source).replace_strict(
            {v: i for i, v in enumerate(contract.classes)}, return_dtype=pl.Int32)).alias("class_index"),
        "row_hash",
        pl.when(bucket < _CUTS[0]).then(pl.lit("train")).when(bucket < _CUTS[1]).then(pl.lit("valid"))
        .otherwise(pl.lit("test")).alias("split"),
    )  # fmt: skip
    curated.collect().write_parquet(f"{out}/curated", partition_by="split")
    return {"seconds": time.monotonic() - start, "curated_dir": f"{out}/curated"}


def floor(contract: Contract, raw: str, out: str) -> dict:
    """The least any engine must do: read the file (typed) and write it as Parquet (Polars, lazily streamed)."""
    import polars as pl

    start = time.monotonic()
    kinds = {"number": pl.Float64, "integer": pl.Int64, "string": pl.String}
    schema = {c.source: kinds[c.type] for c in contract.columns}
    pl.scan_csv(raw, separator=contract.delimiter, schema=schema, quote_char=None, ignore_errors=True,
                truncate_ragged_lines=True).sink_parquet(f"{out}/floor.parquet")  # fmt: skip
    return {"seconds": time.monotonic() - start, "curated_dir": None}
