"""The raw input as Spark sees it: its files, each file's header mapped onto the contract, and line numbers.

Columns are matched to the contract by name (the header of each CSV file, the column names of Parquet), so a
file may order its columns as it likes and carry more of them. The mapping is decided in the driver from line 1
of every file, before any row is read: a file lacking contract columns fails there, in one line naming them.

Line numbers cost no shuffle and no per-row string: every text line gets `monotonically_increasing_id()` right at
the scan (partition index << 33 + position within the partition, in file order), and one cheap aggregate over
the parsed lines kept (`chunk_table`) counts the lines of every (file, split) chunk. From those counts
the driver knows, for each chunk, which ids it holds and how many lines of its file come before it: line 1 of a
file (its header) is one known id, and the line of any id is a lookup done only for quarantined rows. Parquet
has its own row index (`_metadata.row_index`), so its ids are simply file index << 40 + row index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from data_platform.contract import Contract
from data_platform.spark import byte_size, first_line
from platform_core.errors import DataError

FILE_BITS = 40  # Parquet ids: file index above these bits, row index below
_SHOWN = 8  # header names quoted in an error, at most
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Where the contract's columns are in one file's records."""

    positions: tuple[int, ...]  # field index of each contract column, in contract order
    width: int  # fields per record (a record with another count is a field_count defect)


@dataclass
class RawInput:
    files: list[str]  # as Spark's _metadata.file_path names them, sorted: the file index is the position
    layouts: list[Layout]
    layout_of: list[int]  # per file index: its layout
    lines: DataFrame | None = None  # text only: file_path, block, value, rid (every line, blank ones too)
    # text only: per (file, split) chunk: file, start id, first line, lines. Known at open for one small file,
    # else counted from the parse (checks.parse), before anything needs a line number or the header's id.
    chunks: list[dict] | None = None
    frame: DataFrame | None = None  # parquet only
    header: bool = False  # line 1 of every file is a header

    @property
    def header_ids(self) -> list[int]:
        """The ids of line 1 of every file (text with a header): the only lines dropped as headers."""
        return [c["start"] for c in self.chunks or [] if self.header and c["first_line"] == 1]

    def file_index(self, path: SparkColumn) -> SparkColumn:
        """A file path column -> its file index (a constant for one file: no per-row lookup)."""
        if len(self.files) == 1:
            return F.lit(0)
        return F.element_at(F.create_map(*[x for i, f in enumerate(self.files) for x in (F.lit(f), F.lit(i))]), path)

    def file_and_line(self, rid: SparkColumn) -> tuple[SparkColumn, SparkColumn]:
        """A row id -> (file index, line number). Meant for the few quarantined rows: it looks the id up in the
        chunk table (an array per partition, searched with `filter`)."""
        if self.chunks is None:  # parquet
            return F.shiftright(rid, FILE_BITS).cast("int"), (rid - F.shiftleft(F.shiftright(rid, FILE_BITS),
                                                                                 FILE_BITS) + 1)  # fmt: skip
        by_part: dict[int, list[dict]] = {}
        for c in sorted(self.chunks, key=lambda c: c["start"]):
            by_part.setdefault(c["start"] >> 33, []).append(c)
        table = F.create_map(*[
            x for part, cs in by_part.items()
            for x in (F.lit(part), F.array(*[F.struct(F.lit(c["start"]).alias("s"), F.lit(c["file"]).alias("f"),
                                                      F.lit(c["first_line"] - c["start"]).alias("o")) for c in cs]))
        ])  # fmt: skip
        candidates = F.filter(F.element_at(table, F.shiftright(rid, 33)), lambda c: c["s"] <= rid)
        chunk = F.element_at(candidates, -1)
        return chunk["f"], rid + chunk["o"]


def local_text_bytes(raw: RawInput) -> tuple[int, float] | None:
    """(bytes of all files, mean bytes per line in the first MiB of the first) when every input is a local text
    file; None otherwise. For sizing what the ETL keeps, before any Spark job."""
    if raw.lines is None or not all(f.startswith("file:") for f in raw.files):
        return None
    try:
        total = sum(os.path.getsize(display(f)) for f in raw.files)
        with open(display(raw.files[0]), "rb") as f:
            sample = f.read(_SAMPLE_BYTES)
    except OSError:
        return None
    return (total, len(sample) / max(1, sample.count(b"\n"))) if sample else None


def display(uri: str) -> str:
    """A file URI as a user wrote it: a local path for file: URIs (decoded), the URI otherwise."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else uri


def _norm(uri: str) -> str:
    """A URI in the form Spark's _metadata.file_path gives (Hadoop's Path.toUri): `file:/x`, `s3a://b/x`."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else f"{parts.scheme}:{parts.path}"


def open_input(spark: SparkSession, inputs: list[str], contract: Contract) -> RawInput:
    """List the files, map every file's columns to the contract (raising before any row is read), and for text
    count the lines of each chunk (one narrow aggregate over the raw lines)."""
    if contract.input_format == "parquet":
        return _open_parquet(spark, inputs, contract)
    reader = spark.read.text(inputs)
    files = sorted(_norm(f) for f in reader.inputFiles())
    if not files:
        raise DataError(f"raw input {inputs} holds no files", "write it or set PLATFORM_RAW_PATH")
    if contract.header:
        layouts = [_layout(contract, display(f), (first_line(f, spark) or "").split(contract.delimiter)) for f in files]
    else:
        layouts = [Layout(tuple(range(len(contract.columns))), len(contract.columns))] * len(files)
    distinct = sorted(set(layouts), key=layouts.index)
    raw = RawInput(files, distinct, [distinct.index(layout) for layout in layouts], header=contract.header)
    # The id must be taken right above the scan: below any filter, so that blank lines count as lines.
    raw.lines = reader.select(F.col("_metadata.file_path").alias("file_path"),
                              F.col("_metadata.file_block_start").alias("block"), "value",
                              F.monotonically_increasing_id().alias("rid"))  # fmt: skip
    raw.chunks = _one_chunk(spark, files)
    return raw


def _conf_bytes(spark: SparkSession, key: str) -> int | None:
    """A byte-size setting of the session ("4194304", "4MB", "128m"), or None when it cannot be read."""
    try:
        value = spark.conf.get(key)  # the default too ("4194304b"), unlike get(key, None)
    except Exception:  # noqa: BLE001 - an unknown key: no shortcut
        return None
    return byte_size(value or "")


def _one_chunk(spark: SparkSession, files: list[str]) -> list[dict] | None:
    """The chunk table without reading a line, where it is known: one local file no larger than Spark's file
    open cost (and its maximum partition size) is never split, so it is one chunk, read by partition 0, whose
    ids start at 0. Saves an action (planning and a job) on small inputs; None otherwise."""
    if len(files) != 1 or not files[0].startswith("file:"):
        return None
    limits = [_conf_bytes(spark, k) for k in ("spark.sql.files.openCostInBytes", "spark.sql.files.maxPartitionBytes")]
    try:
        size = os.path.getsize(display(files[0]))
    except OSError:
        return None
    if None in limits or size > min(limits):
        return None
    return [{"file": 0, "start": 0, "n": None, "block": 0, "first_line": 1}]


def chunk_table(raw: RawInput, lines: DataFrame | None = None) -> list[dict]:
    """Lines per (file, split) chunk and the first id of each: a few rows (one per chunk) reach the driver.
    `lines` has every line's `rid`, file index `fi` and `block` (the parse keeps them); by default the raw
    lines are read again."""
    if lines is None:
        lines = raw.lines.select("rid", raw.file_index(F.col("file_path")).alias("fi"), "block")
    rows = (
        lines.groupBy("fi", F.shiftright("rid", 33).alias("part"))
        .agg(F.count("*").alias("n"), F.min("rid").alias("start"), F.min("block").alias("block"))
        .collect()
    )
    chunks = sorted(({"file": r["fi"], "start": r["start"], "n": r["n"], "block": r["block"]} for r in rows),
                    key=lambda c: (c["file"], c["block"]))  # fmt: skip
    seen: dict[int, int] = {}
    for c in chunks:  # a file's chunks in byte order: the lines before each one are its predecessors' lines
        c["first_line"] = seen.get(c["file"], 0) + 1
        seen[c["file"]] = seen.get(c["file"], 0) + c["n"]
    return chunks


def _layout(contract: Contract, file: str, header: list[str]) -> Layout:
    """One file's header -> where each contract column is. Fails in one line naming what is missing or extra."""
    names = [h.strip(" ") for h in header]
    if names:
        names[0] = names[0].removeprefix("\ufeff")  # a UTF-8 byte order mark, as spreadsheet exports write it
    return Layout(_positions(contract, file, names, "header"), len(names))


def _positions(contract: Contract, file: str, names: list[str], what: str) -> tuple[int, ...]:
    wanted = contract.sources
    missing = [n for n in wanted if n not in names]
    twice = sorted({n for n in wanted if names.count(n) > 1})
    shown = ", ".join(repr(n) for n in names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
    if missing:
        raise DataError(
            f"{file}: the {what} lacks contract column(s) {missing} (it has {shown})",
            f"name them so in the file, or map each with physicalName in {contract.path}",
        )
    if twice:
        raise DataError(f"{file}: the {what} names column(s) {twice} more than once", "give each column one name")
    extra = [n for n in names if n not in wanted]
    if extra and contract.extra_columns == "refuse":
        raise DataError(
            f"{file}: the {what} has column(s) {extra[:_SHOWN]} the contract does not name (extraColumns: refuse)",
            f"drop them from the file, or set extraColumns to ignore in {contract.path}",
        )
    return tuple(names.index(n) for n in wanted)


def _open_parquet(spark: SparkSession, inputs: list[str], contract: Contract) -> RawInput:
    frame = spark.read.parquet(*inputs)  # reads the footers only: the schema, no rows
    files = sorted(_norm(f) for f in frame.inputFiles())
    _positions(contract, ", ".join(display(f) for f in files), list(frame.columns), "Parquet schema")
    raw = RawInput(files, [Layout(tuple(range(len(contract.columns))), len(contract.columns))], [0] * len(files))
    path = F.col("_metadata.file_path")
    rid = F.shiftleft(raw.file_index(path).cast("long"), FILE_BITS) + F.col("_metadata.row_index")
    raw.frame = frame.select(rid.alias("rid"), *[F.col(f"`{c.source}`") for c in contract.columns])
    return raw
