"""Where the ETL keeps its parse: in the heap when it fits the storage share Spark protects from eviction, on
local disk when it does not (data_platform.spark.keep_level); the output is the same either way."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark import StorageLevel

from data_platform import spark as seam
from data_platform.checks import kept_bytes, parse
from data_platform.etl import run_etl
from data_platform.inputs import open_input


def _stored(spark) -> dict[int, tuple[int, int]]:
    """{RDD id: (bytes in memory, bytes on disk)} of every stored RDD, as Spark's block manager reports them."""
    return {i.id(): (i.memSize(), i.diskSize()) for i in spark.sparkContext._jsc.sc().getRDDStorageInfo()}


def _parse_stored(spark, raw, contract):
    """Parse, and what the parse stored: (the frame, its release, (bytes in memory, bytes on disk))."""
    before = _stored(spark)
    parsed, release = parse(raw, contract)
    new = [v for k, v in _stored(spark).items() if k not in before]
    assert len(new) == 1, new
    return parsed, release, new[0]


def test_heap_sizes_read_as_spark_reads_them():
    assert seam.heap_bytes("2g") == seam.heap_bytes("2048m") == seam.heap_bytes("2048") == 2 << 30
    assert seam.heap_bytes("4GB") == 4 << 30 and seam.heap_bytes("512k") == 512 << 10
    assert seam.heap_bytes("2048b") == 2048 and seam.heap_bytes("not-a-size") is None


def test_the_parse_is_kept_in_the_heap_or_on_disk_by_its_size(spark, synth, monkeypatch):
    contract = synth["contract"]
    raw = open_input(spark, [str(synth["raw"])], contract)
    parsed, release, (memory, disk) = _parse_stored(spark, raw, contract)
    try:
        estimate = kept_bytes(raw, len(parsed.columns))  # one small file: no chunk columns were kept
        assert memory > 0 and disk == 0  # 3,000 rows: in the 2g heap
    finally:
        release()
    monkeypatch.setenv("PLATFORM_SPARK_DRIVER_MEMORY", "301m")  # a storage share of 0.3 MiB: too small for it
    assert seam.keep_level(estimate) == StorageLevel.DISK_ONLY
    raw = open_input(spark, [str(synth["raw"])], contract)
    parsed, release, (memory, disk) = _parse_stored(spark, raw, contract)
    try:
        assert memory == 0 and disk > 0
        # The rows' own bytes, as written to disk (the in-memory figure is Spark's sampled object-size estimate,
        # which varies between JVMs): the estimate is above them, and not wildly.
        assert disk <= estimate <= 4 * disk, (disk, estimate)
    finally:
        release()


def test_the_output_is_the_same_kept_in_memory_or_on_disk(spark, synth, monkeypatch, tmp_path):
    manifests = []
    for heap, lake in (("2g", tmp_path / "memory"), ("301m", tmp_path / "disk")):
        monkeypatch.setenv("PLATFORM_SPARK_DRIVER_MEMORY", heap)
        result = run_etl(str(synth["raw"]), str(lake), synth["sidecar"]["contract"])
        manifests.append(json.loads((Path(result.path) / "_manifest.json").read_text()))
    same = ("content_hash", "quarantine_hash", "rows_by_split", "quarantine_by_reason", "class_counts",
            "column_stats")  # fmt: skip
    assert {k: manifests[0][k] for k in same} == {k: manifests[1][k] for k in same}
