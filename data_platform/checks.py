"""The contract as Spark column expressions: parse every raw record once, give each bad one a reason, find the
duplicates of the row key, assign splits.

All decisions are functions of one record (plus, for duplicates, of the records sharing its key), never of row
order or partitioning: the same input gives the same curated rows and the same split however Spark schedules it.
Spark 4 runs in ANSI mode, where a plain cast of a malformed string raises, hence `try_cast` throughout.

What makes it cheap: one projection computes everything a record needs (reason code, key hashes, digests, typed
values) and is cached, so nothing is parsed twice and no filter is pushed below it (a pushed filter would
re-evaluate the checks); reasons travel as small integer codes, not strings; the raw line is kept only for bad
records; duplicates are found by one narrow aggregate (GROUP BY key hash: count, min and max of a record hash)
instead of window sorts of whole records, and only the few records of repeated keys are looked at again. Every
action after the parse plans a small plan (the parse and the duplicates are localCheckpoint leaves) and none is
taken only to check something: each is analyzed, planned and code-generated anew in the driver, which on a
fresh JVM costs more than 150 rows of work (6 actions per run; 8 before, with 26 jobs instead of 16).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark import StorageLevel
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from data_platform.contract import Column, Contract
from data_platform.inputs import RawInput, chunk_table, local_text_bytes
from data_platform.spark import materialize
from platform_core.errors import ConfigError

# In order of precedence within a column (columns are checked in contract order; a record gets the first reason
# that applies to it).
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
QUARANTINE_COLUMNS = ["source", "line", "raw_line", "reason", "column"]
BLANK, HEADER = -1, -2  # codes of lines that are not records (dropped, but counted as lines)
# Above this many rows a small table is joined by shuffle, not broadcast (duplicate keys, duplicate rows).
BROADCAST_ROWS = 2_000_000


def split_cuts(valid: float, test: float) -> tuple[int, int]:
    """Bucket bounds: bucket < first -> train, < second -> valid, else test (buckets: row hash mod 10 000)."""
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise ConfigError(
            f"split fractions valid={valid} test={test} leave no training rows",
            "set PLATFORM_SPLIT_VALID and PLATFORM_SPLIT_TEST to shares > 0 whose sum is < 1",
        )
    return round(SPLIT_BUCKETS * (1 - valid - test)), round(SPLIT_BUCKETS * (1 - test))


def codes(contract: Contract) -> list[tuple[str, str | None]]:
    """(reason, column) of every code: code k is entry k (0 is unused; codes start at 1)."""
    out: list[tuple[str, str | None]] = [("", None), ("field_count", None)]
    for col in contract.columns:
        out += [(reason, col.name) for _, reason in _column_checks(col, contract.label)]
    return [*out, ("duplicate_key", None)]


def _tokens(raw: RawInput, contract: Contract) -> tuple[DataFrame, str | None]:
    """-> (frame with rid, raw_line, n_fields, the fields its file's header expects (width), the key hashes k1 and
    k2, the record hash rec, and per contract column its typed value v<i>, missing flag m<i> and, where a check
    compares it as text, its trimmed token t<i>; the not-a-record condition as SQL, or None). Text is split once
    per record, and each column takes its field from the position its file's header gave it."""
    if raw.frame is not None:  # parquet: columns by name already
        n = len(contract.columns)
        toks = _token_columns(contract, [f"trim(CAST({_name(c.source)} AS STRING))" for c in contract.columns])
        frame = raw.frame.selectExpr("rid", f"{_parquet_line(contract)} AS raw_line", f"{n} AS n_fields",
                                     f"{n} AS width", *toks)  # fmt: skip
        return frame, None
    # Spark's text reader already ends lines at \n, \r\n or \r: no CR is left to strip.
    lines = raw.lines.select("rid", raw.file_index(F.col("file_path")).alias("fi"), "block",
                             F.col("value").alias("raw_line"))  # fmt: skip
    layout = "0" if len(raw.layouts) == 1 else f"element_at(array({_ints(raw.layout_of)}), fi + 1)"
    lines = lines.selectExpr("rid", "fi", "block", "raw_line", f"{layout} AS layout")
    # The split written out in every token: code generation computes it once per record (common subexpression
    # elimination), and no row holding the array is written between it and the tokens.
    fields = f"split(raw_line, {_sql_string(_pattern(contract.delimiter))}, -1)"

    def per_layout(values: list[int]) -> str:
        return str(values[0]) if len(set(values)) == 1 else f"element_at(array({_ints(values)}), layout + 1)"

    toks = _token_columns(contract, [f"trim(get({fields}, {per_layout([lay.positions[i] for lay in raw.layouts])}))"
                                     for i in range(len(contract.columns))])  # fmt: skip
    frame = lines.selectExpr("rid", "fi", "block", "raw_line", f"size({fields}) AS n_fields",
                             f"{per_layout([lay.width for lay in raw.layouts])} AS width", *toks)  # fmt: skip
    return frame, "trim(raw_line) = ''"


def _token_columns(contract: Contract, tokens: list[str]) -> list[str]:
    """As SQL, over each column's token: its typed value v<i> and is-missing flag m<i> (null or empty token), the
    token itself t<i> only where a check or the class index compares it as text, and the key hashes k1, k2 and
    the record hash rec. In one projection, where code generation computes each token once for all its uses;
    the checks' projection then reads typed values and flags, not tokens copied into a row between the two."""
    out = []
    for i, (col, tok) in enumerate(zip(contract.columns, tokens, strict=True)):
        out += [f"{_typed(col, tok)} AS v{i}", f"({tok} IS NULL OR {tok} = '') AS m{i}"]
        if col.allowed is not None or col.name == contract.label:
            out.append(f"{tok} AS t{i}")
    index = {c.name: i for i, c in enumerate(contract.columns)}
    key_toks = ", ".join(f"coalesce({tokens[index[k]]}, '')" for k in contract.key_columns)
    # The key as written (trimmed tokens): its sha256 gives the split exactly as any other engine computes it.
    out.append(f"CAST(conv(substring(sha2(concat_ws({_sql_string(KEY_SEPARATOR)}, {key_toks}), 256), 1, 15), 16, 10)"
               " AS BIGINT) AS k1")  # fmt: skip
    out.append(f"xxhash64({key_toks}) AS k2")
    # Whole record as key: key equality is record equality, so no record hash is needed.
    all_toks = ", ".join(f"coalesce({tok}, '')" for tok in tokens)
    out.append(f"{f'xxhash64({all_toks})' if contract.key else 'CAST(0 AS BIGINT)'} AS rec")
    return out


def _parquet_line(contract: Contract) -> str:
    """A Parquet record's raw line, as SQL: its contract columns as JSON (the parse and `source_lines` agree)."""
    return f"to_json(struct({', '.join(_name(c.source) for c in contract.columns)}))"


def _ints(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def _name(name: str) -> str:
    """A column name as SQL (backquoted: a source's names need not be identifiers)."""
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    """`text` as a SQL string literal (backslash and quote escaped, as Spark's parser reads them by default)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _double(bound: float) -> str:
    return f"CAST('{bound!r}' AS DOUBLE)"


def _pattern(delimiter: str) -> str:
    """The delimiter as the regex Spark's split takes (one character: Java's split takes its fast path)."""
    return "\\" + delimiter if delimiter in ".$|()[]{}^?*+\\" else delimiter


def _typed(col: Column, token: str) -> str:
    """A token (SQL) typed, as SQL (try_cast: Spark 4 runs in ANSI mode, where a plain cast of a malformed string
    raises)."""
    if col.type == "number":
        # An empty token is null without the cast: Spark's string-to-double cast parses with Java's, which
        # throws (and fills a stack trace) for each one, ~1-2 us per value (3M rows, half of them empty: 2.1-3.3 s
        # plain, 0.4-0.7 s so, measured): an optional column that is mostly blank paid that on every row. Not
        # nullif: Spark 4 rewrites it through a With into one more projection, which slowed the parse.
        return f"try_cast(if({token} = '', NULL, {token}) AS DOUBLE)"
    if col.type == "integer":
        return f"try_cast({token} AS BIGINT)"
    return token


_RANGE_SQL = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _column_checks(col: Column, label: str, i: int = 0) -> list[tuple[str, str]]:
    """(failure condition as SQL, reason) for column i, in precedence order: over its token t<i>, typed value
    v<i> and is-missing flag m<i> (null or empty token, computed once per record)."""
    out: list[tuple[str, str]] = []
    if col.required:
        out.append((f"m{i}", "missing_value"))
    if col.numeric:
        out.append((f"(NOT m{i} AND v{i} IS NULL)", "malformed_number"))
    if col.type == "number":
        out.append((f"(isnan(v{i}) OR v{i} IN ({_double(float('inf'))}, {_double(float('-inf'))}))", "non_finite"))
    for key, bound in col.ranges:
        out.append((f"(NOT m{i} AND NOT (v{i} {_RANGE_SQL[key]} {_double(bound)}))", "out_of_range"))
    if col.allowed is not None:
        out.append((f"(NOT m{i} AND NOT (t{i} IN ({', '.join(_sql_string(v) for v in col.allowed)})))",
                    "unknown_label" if col.name == label else "invalid_value"))  # fmt: skip
    return out


def parse(raw: RawInput, contract: Contract) -> tuple[DataFrame, Callable[[], None]]:
    """Every raw line -> rid, code (null: a good record; > 0: the reason; < 0: not a record), the key's split
    hash and a second 64-bit hash of it, a hash of the whole record, two digests of the raw line, the typed
    values, the class index, and the raw line only where the record is bad. Computed once (the first action) and
    kept: every later step reads it -> (that frame, a function freeing it). Text input: the chunk table is counted
    from it (`raw.chunks`, where not known at open), and line 1 of every file then marked a header.

    The expressions are written as SQL text: built through the Column API they took ~9,600 calls into the JVM
    for 22 columns, as SQL a few dozen; the plan is the same (the set-up before the action 1.84 -> 1.34 s at 1M
    rows, measured)."""
    frame, not_record = _tokens(raw, contract)
    n = len(contract.columns)
    # Text whose chunks open_input could not know (all but one small local file): counted from this frame, kept.
    count_chunks = raw.lines is not None and raw.chunks is None
    # Each column's missing flag is computed once, below the CASE: a CASE re-evaluates what its later branches
    # share (Spark's subexpression elimination leaves conditional branches alone), and every check of a column
    # starts with it.
    conditions = ["n_fields != width"]
    for i, col in enumerate(contract.columns):
        conditions += [cond for cond, _ in _column_checks(col, contract.label, i)]
    # One CASE: the first failing check gives the code, and the code gives both the reason and the column.
    code = ("CASE " + (f"WHEN {not_record} THEN {BLANK} " if not_record else "")
            + " ".join(f"WHEN {cond} THEN {k}" for k, cond in enumerate(conditions, start=1)) + " END")  # fmt: skip
    index = {c.name: i for i, c in enumerate(contract.columns)}
    label = f"t{index[contract.label]}"
    class_index = ("CASE " + " ".join(f"WHEN {label} = {_sql_string(name)} THEN {i}"
                                      for i, name in enumerate(contract.classes)) + " ELSE -1 END")  # fmt: skip
    frame = frame.selectExpr(
        "rid",
        f"{code} AS code",
        "k1",
        "k2",
        "rec",
        # Two independent 64-bit digests of the raw record; summed they fingerprint a set of rows whatever its
        # order (the content hash).
        "xxhash64(raw_line) AS da",
        "xxhash64(raw_line, 1) AS db",
        *[f"v{i}" for i in range(n)],
        f"CAST({class_index} AS INT) AS class_index",
        f"CASE WHEN ({code}) IS NOT NULL THEN raw_line END AS raw_line",
        *(["fi", "block"] if count_chunks else []),
    )
    # Where the chunks are counted, counting them is the action that computes and keeps the parse (one pass).
    done, release = materialize(frame, kept_bytes(raw, len(frame.columns)), eager=not count_chunks)
    if count_chunks:
        raw.chunks = chunk_table(raw, done)
        done = done.drop("fi", "block")
    if raw.header_ids:  # line 1 of every file, now that the chunks say which ids those are
        header = F.col("rid").isin(raw.header_ids)
        done = done.withColumn("code", F.when(header, F.lit(HEADER)).otherwise(F.col("code")))
    return done, release


def kept_bytes(raw: RawInput, width: int) -> int | None:
    """About what the parse keeps, from above: rows (the input's bytes over its mean line length) times a row of
    `width` 8-byte fields plus its line's bytes (a bound for its string values and a bad record's raw line).
    None unless the input is local text."""
    sized = local_text_bytes(raw)
    if sized is None:
        return None
    total, line = sized
    return int(total / line * (8 + 8 * width + line))


def duplicates(parsed: DataFrame, raw: RawInput, contract: Contract) -> tuple[DataFrame | None, Callable[[], None]]:
    """The good records that the duplicate rule quarantines -> ((rid, raw_line), computed once and kept, or None
    when there are none; a function freeing what it kept).

    Among good records sharing a key: exact copies (same tokens) keep one, the first by (raw line, file, line);
    records that differ are all quarantined, since nothing says which is right. Found by one aggregate over
    hashes (its size, one small action, says whether there is anything more to do and how to join); only the
    records of repeated keys are then looked at, with their raw lines read again by id, and the keeper chosen by
    one window over those few records: two actions in all."""
    good = parsed.where(F.col("code").isNull())
    groups = (
        good.groupBy("k1", "k2")
        .agg(F.count("*").alias("n"), (F.min("rec") != F.max("rec")).alias("conflict"))
        .where(F.col("n") > 1)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    size = groups.agg(F.count("*").alias("groups"), F.sum("n").alias("members")).collect()[0]
    if size["groups"] == 0:
        groups.unpersist()
        return None, lambda: None
    members = good.select("rid", "k1", "k2").join(_small(groups.drop("n"), size["groups"]), ["k1", "k2"])
    lines = source_lines(raw, contract).join(_small(members, size["members"]), "rid")
    file, _ = raw.file_and_line(F.col("rid"))
    first = F.min(F.when(~F.col("conflict"), F.struct(F.col("raw_line"), file.alias("file"), F.col("rid"))))
    dupes = (
        lines.select("*", first.over(Window.partitionBy("k1", "k2"))["rid"].alias("keep"))
        .where(F.col("conflict") | (F.col("rid") != F.col("keep")))
        .select("rid", "raw_line")
    )
    dupes, release = materialize(dupes)
    groups.unpersist()
    return dupes, release


def source_lines(raw: RawInput, contract: Contract) -> DataFrame:
    """(rid, raw_line) of every record, read again from the input: the same ids as the cached parse (the same
    scan of the same files)."""
    if raw.frame is not None:
        return raw.frame.selectExpr("rid", f"{_parquet_line(contract)} AS raw_line")
    return raw.lines.select("rid", F.col("value").alias("raw_line"))


def _small(frame: DataFrame, rows: int) -> DataFrame:
    return F.broadcast(frame) if rows <= BROADCAST_ROWS else frame


def finalize(parsed: DataFrame, dupes: DataFrame | None, contract: Contract, cuts: tuple[int, int]) -> DataFrame:
    """Records only (blank lines and headers dropped), with the duplicate rule applied and the split assigned."""
    records = parsed.where(F.col("code").isNull() | (F.col("code") > 0))
    if dupes is not None:
        dup_code = len(codes(contract)) - 1
        records = records.join(F.broadcast(dupes.withColumnRenamed("raw_line", "dup_line")), "rid", "left").select(
            *[c for c in parsed.columns if c not in ("code", "raw_line")],
            F.when(F.col("dup_line").isNotNull(), F.lit(dup_code)).otherwise(F.col("code")).alias("code"),
            F.coalesce("raw_line", "dup_line").alias("raw_line"),
        )
    bucket = F.pmod(F.col("k1"), F.lit(SPLIT_BUCKETS))
    split = F.when(bucket < cuts[0], "train").when(bucket < cuts[1], "valid").otherwise("test")
    return records.withColumn("split", F.when(F.col("code").isNull(), split))


_NEVER = {"number": 0.0, "integer": 0, "string": ""}  # the unreachable fallback of a required column, per type


def curated_columns(contract: Contract) -> list[SparkColumn]:
    """The curated table: every contract column typed (by its contract name), the class index, the row hash and
    the split. A required column is never null in a curated row, and its type says so (coalesce never takes its
    fallback): Parquet stores it as `required`, without a definition level per value."""
    return [
        *[
            (F.coalesce(F.col(f"v{i}"), F.lit(_NEVER[c.type])) if c.required else F.col(f"v{i}")).alias(c.name)
            for i, c in enumerate(contract.columns)
        ],
        "class_index",
        F.col("k1").alias("row_hash"),
        "split",
    ]


def quarantine_columns(raw: RawInput, contract: Contract) -> list[SparkColumn]:
    """The quarantine table: source file, line number, raw line, reason, column (file and line looked up from
    the row id, for these rows only)."""
    names = codes(contract)
    file, line = raw.file_and_line(F.col("rid"))
    return [
        F.element_at(F.array(*[F.lit(f) for f in raw.files]), file + 1).alias("source"),
        line.cast("long").alias("line"),
        "raw_line",
        F.element_at(F.array(*[F.lit(r) for r, _ in names]), F.col("code") + 1).alias("reason"),
        F.element_at(F.array(*[F.lit(c) for _, c in names]), F.col("code") + 1).alias("column"),
    ]
