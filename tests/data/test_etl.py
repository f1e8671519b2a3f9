"""The Spark ETL on generated data: exact quarantine counts, an independent oracle, idempotence, the noise guard,
and readers that only follow the `_latest` pointer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest

from data_platform import lake as lake_store
from data_platform.checks import split_cuts
from data_platform.contract import load_contract
from data_platform.etl import run_etl
from data_platform.generate import generate
from ml_platform.dataset import load_splits
from platform_core.errors import DataError
from tests.data.conftest import reshape
from tests.data.oracle import expected, expected_rows


@pytest.fixture(scope="module")
def first_run(spark, synth):
    return run_etl(str(synth["raw"]), synth["lake"], str(synth["contract"].path))


def _curated(path: str) -> pd.DataFrame:
    return pads.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()


def test_every_injected_defect_is_quarantined_with_its_reason_and_no_good_row_is_lost(synth, first_run):
    side = synth["sidecar"]
    assert first_run.quarantine_by_reason == side["defects"]
    assert all(n == 30 for n in side["defects"].values())
    assert first_run.rows_in == side["rows"] and first_run.rows_curated == side["good_rows"]
    lines = synth["raw"].read_text().split("\n")[1:]  # header off: record i is on line i + 2
    quarantine = pd.read_parquet(f"{first_run.path}/{lake_store.QUARANTINE}")
    got = sorted(zip(quarantine["line"], quarantine["raw_line"], quarantine["reason"], strict=True))
    want = sorted((i + 2, lines[i], kind) for kind, rows in side["rows_with_defect"].items() for i in rows)
    assert got == want
    assert set(quarantine["source"]) == {synth["raw"].resolve().as_uri().replace("file:///", "file:/")}
    manifest = lake_store.read_manifest(synth["lake"], "synth")
    assert manifest["quarantine_by_reason"] == {**dict.fromkeys(manifest["quarantine_by_reason"], 0), **side["defects"]}
    assert manifest["rows_in"] == manifest["rows_curated"] + manifest["rows_quarantined"]


def test_curated_rows_and_splits_match_an_independent_oracle_row_for_row(synth, first_run):
    contract = synth["contract"]
    want, reasons = expected(contract, synth["raw"].read_text(), split_cuts(0.15, 0.15))
    assert reasons == synth["sidecar"]["defects"]
    _, lines = expected_rows(contract, synth["raw"].read_text(), split_cuts(0.15, 0.15))
    quarantine = pd.read_parquet(f"{first_run.path}/{lake_store.QUARANTINE}")
    assert sorted(zip(quarantine["line"], quarantine["reason"], strict=True)) == lines
    got = _curated(first_run.path)
    assert len(got) == len(want)
    for row in got.itertuples(index=False):
        tokens, split = want[str(row.id)]
        assert row.split == split
        assert [getattr(row, f) for f in contract.features] == [float(t) for t in tokens[1:-1]]
        assert contract.classes[row.class_index] == getattr(row, contract.label) == tokens[-1]


def test_manifest_records_schema_sources_hashes_and_stats(synth, first_run):
    manifest = lake_store.read_manifest(synth["lake"], "synth")
    assert manifest["features"] == [f"x{i:02d}" for i in range(6)] and manifest["classes"] == ["c0", "c1", "c2"]
    assert manifest["rows_by_split"] == first_run.rows_by_split
    assert sum(manifest["rows_by_split"].values()) == manifest["rows_curated"]
    assert manifest["sources"][0]["sha256"] and manifest["contract"]["sha256"] == synth["contract"].sha256
    assert len(manifest["content_hash"]) == 64 and manifest["job_version"]
    stats = manifest["column_stats"]["x00"]
    assert -1000 <= stats["min"] < stats["mean"] < stats["max"] <= 1000 and stats["non_null"] == first_run.rows_curated
    counts = manifest["class_counts"]
    assert sum(sum(c.values()) for c in counts.values()) == manifest["rows_curated"]


def test_rerun_and_reordered_input_give_the_same_hash_and_reuse_the_version(synth, first_run, tmp_path):
    again = run_etl(str(synth["raw"]), synth["lake"], str(synth["contract"].path))
    assert (again.reused, again.version, again.content_hash) == (True, first_run.version, first_run.content_hash)
    lines = synth["raw"].read_text().rstrip("\n").split("\n")
    body = lines[1:]
    random.Random(1).shuffle(body)
    shuffled = tmp_path / "shuffled.data"
    shuffled.write_text("\n".join([lines[0], *body]) + "\n")
    reordered = run_etl(str(shuffled), synth["lake"], str(synth["contract"].path))
    assert (reordered.reused, reordered.version, reordered.content_hash) == (True, first_run.version,
                                                                             first_run.content_hash)  # fmt: skip
    assert [v["version"] for v in lake_store.list_versions(synth["lake"], "synth")] == [first_run.version]


def test_an_unchanged_input_is_reused_without_starting_spark(synth, first_run, tmp_path, monkeypatch):
    import data_platform.etl as etl

    class SparkStarted(Exception):
        pass

    def no_spark(**_):
        raise SparkStarted

    monkeypatch.setattr(etl, "get_session", no_spark)
    again = run_etl(str(synth["raw"]), synth["lake"], str(synth["contract"].path))
    assert again.reused and (again.version, again.content_hash, again.rows_in, again.rows_by_split,
                             again.quarantine_by_reason) == (first_run.version, first_run.content_hash,
                                                             first_run.rows_in, first_run.rows_by_split,
                                                             first_run.quarantine_by_reason)  # fmt: skip
    # One byte changed, same size: the files are hashed, not just sized, so the job runs.
    text = synth["raw"].read_text()
    digit = next(i for i in range(len(text) - 1, 0, -1) if text[i].isdigit())
    edited = tmp_path / "edited.data"
    edited.write_text(text[:digit] + ("1" if text[digit] != "1" else "2") + text[digit + 1 :])
    with pytest.raises(SparkStarted):
        run_etl(str(edited), synth["lake"], str(synth["contract"].path))
    with pytest.raises(SparkStarted):  # another split is another dataset
        run_etl(str(synth["raw"]), synth["lake"], str(synth["contract"].path), valid=0.2, test=0.2)


def test_a_batch_of_noise_fails_and_publishes_nothing(spark, synth, first_run, tmp_path):
    rng = random.Random(7)
    noise = tmp_path / "noise.data"
    rows = [";".join(str(rng.random()) for _ in range(rng.randint(2, 9))) for _ in range(300)]
    noise.write_text("\n".join([";".join(synth["contract"].names), *rows]))
    before = sorted(p.name for p in Path(lake_store.dataset_root(synth["lake"], "synth")).iterdir())
    with pytest.raises(DataError, match="above its maxQuarantineRate 10.0%; nothing was published") as err:
        run_etl(str(noise), synth["lake"], str(synth["contract"].path))
    assert "\n" not in str(err.value)
    # The first bad records, with file:line, reason and the raw text quoted literally (cut to a bounded length).
    first = [r for r in rows[:3]]
    examples = str(err.value).split("; first: ")[1].split(" — ")[0].split("; ")
    assert [e.split(" ")[0] for e in examples] == ["noise.data:2", "noise.data:3", "noise.data:4"]
    assert all(repr(r[:60]) in e for r, e in zip(first, examples, strict=True))
    assert sorted(p.name for p in Path(lake_store.dataset_root(synth["lake"], "synth")).iterdir()) == before
    assert lake_store.read_pointer(synth["lake"], "synth")["version"] == first_run.version


def test_readers_follow_only_the_pointer(synth, first_run):
    lake = synth["lake"]
    # A half-written newer version (as a crashed run leaves it) must be invisible to readers.
    partial = Path(lake_store.version_dir(lake, "synth", first_run.version + 1)) / "split=train"
    partial.mkdir(parents=True)
    (partial / "part-0.parquet").write_bytes(b"not parquet")
    splits = load_splits(lake, "synth")
    assert splits.version == first_run.version and splits.content_hash == first_run.content_hash
    assert (len(splits.y_train), len(splits.y_valid), len(splits.y_test)) == tuple(first_run.rows_by_split.values())
    assert splits.feature_names == synth["contract"].features and splits.classes == ["c0", "c1", "c2"]
    assert splits.x_train.shape[1] == 6 and set(splits.y_test.tolist()) <= {0, 1, 2}
    assert [e.get("incomplete", False) for e in lake_store.list_versions(lake, "synth")] == [False, True]
    # An incomplete directory newer than every complete version may be a run still writing: gc leaves it.
    assert lake_store.gc(lake, "synth", keep=1) == [] and partial.exists()


def test_changed_input_publishes_a_new_version_and_gc_keeps_the_newest(spark, synth, first_run, tmp_path):
    lake = synth["lake"]
    fewer = tmp_path / "fewer.data"
    fewer.write_text("\n".join(synth["raw"].read_text().split("\n")[:-200]) + "\n")
    second = run_etl(str(fewer), lake, str(synth["contract"].path))
    assert not second.reused and second.version > first_run.version and second.content_hash != first_run.content_hash
    assert load_splits(lake, "synth").version == second.version
    old = run_etl(str(synth["raw"]), lake, str(synth["contract"].path))  # back to the first input: reused, re-pointed
    assert (old.reused, old.version) == (True, first_run.version)
    assert lake_store.read_pointer(lake, "synth")["version"] == first_run.version
    deleted = lake_store.gc(lake, "synth", keep=1)  # the pointed version survives even though it is not newest
    assert first_run.version not in deleted and load_splits(lake, "synth").version == first_run.version
    with pytest.raises(DataError, match="keep at least 1"):
        lake_store.gc(lake, "synth", keep=0)


def test_curated_output_passes_datacontract_cli(synth, first_run, tmp_path):
    """An independent implementation of the same ODCS contract checks the curated rows (types, ranges, key)."""
    import yaml
    from datacontract.data_contract import DataContract

    doc = yaml.safe_load(Path(synth["contract"].path).read_text())
    doc["servers"].append({"server": "curated", "type": "local", "format": "parquet",
                           "path": f"{first_run.path}/split=*/*.parquet"})  # fmt: skip
    contract = tmp_path / "curated.yaml"
    contract.write_text(yaml.safe_dump(doc))
    run = DataContract(data_contract_file=str(contract), server="curated").test()
    failed = [(c.name, c.reason) for c in run.checks if c.result.value not in ("passed", "warning")]
    assert failed == [] and any("unique" in c.name.lower() or "primary" in c.name.lower() for c in run.checks)


def test_default_iris_contract_end_to_end(spark, tmp_path):
    from data_platform.raw import write_raw_iris

    raw = write_raw_iris(tmp_path / "iris.data")
    result = run_etl(str(raw), str(tmp_path / "lake"))  # PLATFORM_DATASET default: iris
    # iris has no natural key: the whole record is the key, so its one exact repeat is quarantined.
    assert (result.rows_in, result.rows_curated, result.quarantine_by_reason) == (150, 149, {"duplicate_key": 1})
    splits = load_splits(str(tmp_path / "lake"))
    assert splits.dataset == "iris" and len(splits.classes) == 3 and splits.x_train.shape[1] == 4


def test_missing_input_and_missing_dataset_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        run_etl(str(tmp_path / "nope.data"), str(tmp_path / "lake"))
    with pytest.raises(DataError, match="run the ETL first"):
        load_splits(str(tmp_path / "lake"), "iris")


def test_lake_protocol_through_sparks_filesystem_as_on_s3a(spark, synth, first_run, tmp_path, monkeypatch):
    """On a cluster the lake is s3a://, reached through Spark's Hadoop filesystem. Here the same code path runs
    on file:// URIs: read the published version, list it, write a pointer, collect garbage."""
    monkeypatch.setattr(lake_store, "is_remote", lambda uri: True)
    lake = Path(synth["lake"]).as_uri()
    pointed = lake_store.read_pointer(lake, "synth", spark)["version"]
    manifest = lake_store.read_manifest(lake, "synth", spark=spark)
    assert manifest["version"] == pointed and manifest["path"].startswith("file:")
    versions = lake_store.list_versions(lake, "synth", spark)
    assert pointed in [v["version"] for v in versions if v["latest"]]
    other = tmp_path.as_uri()
    lake_store.commit(other, "x", {"version": 7, "content_hash": "h"}, spark)
    assert lake_store.read_pointer(other, "x", spark)["version"] == 7
    assert lake_store.next_version(other, "x", spark) == 1
    (tmp_path / "curated" / "x" / "v=3").mkdir()
    assert lake_store.next_version(other, "x", spark) == 4
    assert lake_store.gc(other, "x", keep=1, spark=spark) == []  # incomplete and newest: kept


def test_header_maps_columns_by_name_in_any_order_per_file(spark, synth, first_run, tmp_path):
    """Two files, each with its own column order, a non-identifier header name (physicalName) and an extra
    column: the same curated rows as the contract-ordered original. A data row equal to the header text on a
    later line is a record (quarantined), never dropped as a header."""
    orders = [["target", "x03", "id", "x05", "x00", "x01", "x02", "x04"],
              ["x05", "x04", "x03", "x02", "x01", "x00", "id", "target"]]  # fmt: skip
    raw, contract_path = reshape(synth, tmp_path, orders, {"x03": "od280/od315_of_diluted_wines"})
    part = raw / "part-0.csv"
    lines = part.read_text().split("\n")
    part.write_text("\n".join([*lines[:49], lines[0], *lines[49:]]))  # line 50: the header's text again
    result = run_etl(str(raw), str(tmp_path / "lake"), str(contract_path))
    defects = synth["sidecar"]["defects"]
    assert result.quarantine_by_reason == {**defects, "malformed_number": defects["malformed_number"] + 1}
    names = [*synth["contract"].names, "class_index", "row_hash", "split"]
    got, want = _curated(result.path)[names], _curated(first_run.path)[names]
    pd.testing.assert_frame_equal(got.sort_values("id").reset_index(drop=True),
                                  want.sort_values("id").reset_index(drop=True))  # fmt: skip
    quarantine = pd.read_parquet(f"{result.path}/{lake_store.QUARANTINE}")
    assert quarantine[quarantine["line"] == 50]["raw_line"].tolist() == [lines[0]]
    contract = load_contract(contract_path)
    for f in sorted(raw.iterdir()):  # lines and reasons per file, duplicates aside (they may span files)
        _, want_lines = expected_rows(contract, f.read_text(), split_cuts(0.15, 0.15))
        mine = quarantine[quarantine["source"].str.endswith(f.name) & (quarantine["reason"] != "duplicate_key")]
        assert sorted(zip(mine["line"], mine["reason"], strict=True)) == [w for w in want_lines
                                                                          if w[1] != "duplicate_key"]  # fmt: skip


def test_a_header_lacking_a_contract_column_fails_before_any_row_is_read(spark, synth, tmp_path):
    orders = [["target", "id", "x05", "x00", "x01", "x02", "x04"]]  # no x03
    raw, contract_path = reshape(synth, tmp_path, orders, {})
    jobs = set(spark.sparkContext.statusTracker().getJobIdsForGroup())
    with pytest.raises(DataError, match=r"part-0.csv: the header lacks contract column\(s\) \['x03'\]") as err:
        run_etl(str(raw), str(tmp_path / "lake"), str(contract_path))
    assert "\n" not in str(err.value) and "physicalName" in str(err.value)
    assert set(spark.sparkContext.statusTracker().getJobIdsForGroup()) == jobs, "a Spark job ran"


def test_extra_columns_are_refused_when_the_contract_says_so(spark, synth, tmp_path):
    orders = [synth["contract"].names]
    raw, contract_path = reshape(synth, tmp_path, orders, {}, extra="comment", extraColumns="refuse")
    with pytest.raises(DataError, match=r"has column\(s\) \['comment'\] the contract does not name"):
        run_etl(str(raw), str(tmp_path / "lake"), str(contract_path))


def test_parquet_input_by_column_name_with_row_numbers(spark, tmp_path):
    """Parquet columns by name (physicalName too), in any order, extra ones ignored; a bad row's line is its
    row number in its file."""
    side = generate(tmp_path / "src.data", tmp_path / "src", "pq", rows=300, features=3, classes=2,
                    defect_rate=0.0, seed=2)  # fmt: skip
    frame = pd.read_csv(side["raw"], dtype=str)
    frame.loc[6, "x01"] = "abc"  # row 7 of the file
    frame = frame.rename(columns={"x02": "x 2"})[["target", "x 2", "id", "x01", "x00"]].assign(extra="e")
    (tmp_path / "in").mkdir()
    frame.to_parquet(tmp_path / "in" / "part-0.parquet", index=False)
    import yaml

    doc = yaml.safe_load(Path(side["contract"]).read_text())
    doc["servers"][0] = {"server": "raw", "type": "local", "format": "parquet", "path": "in"}
    next(p for p in doc["schema"][0]["properties"] if p["name"] == "x02")["physicalName"] = "x 2"
    contract = tmp_path / "pq.yaml"
    contract.write_text(yaml.safe_dump(doc))
    result = run_etl(str(tmp_path / "in"), str(tmp_path / "lake"), str(contract))
    assert (result.rows_in, result.quarantine_by_reason) == (300, {"malformed_number": 1})
    quarantine = pd.read_parquet(f"{result.path}/{lake_store.QUARANTINE}")
    assert quarantine[["line", "reason", "column"]].values.tolist() == [[7, "malformed_number", "x01"]]
    assert list(_curated(result.path).columns[:4]) == ["id", "x00", "x01", "x02"]


def test_the_contracts_raw_server_path_is_the_input_unless_platform_raw_path_says_otherwise(spark, tmp_path,
                                                                                           monkeypatch):  # fmt: skip
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PLATFORM_RAW_PATH", raising=False)
    side = generate(tmp_path / "state" / "raw" / "srv.data", tmp_path, "srv", rows=200, features=2, classes=2,
                    defect_rate=0.0)  # fmt: skip  # the generated contract's path: raw/srv.data
    first = run_etl(None, str(tmp_path / "lake"), side["contract"])
    assert first.rows_in == 200
    other = generate(tmp_path / "elsewhere.data", tmp_path / "other", "srv", rows=120, features=2, classes=2,
                     defect_rate=0.0, seed=9)  # fmt: skip
    monkeypatch.setenv("PLATFORM_RAW_PATH", other["raw"])
    assert run_etl(None, str(tmp_path / "lake"), side["contract"]).rows_in == 120


def test_a_small_single_file_needs_no_line_count_pass(spark, synth):
    """One small local file is one chunk starting at id 0 (known without a job); the counting pass agrees, and
    an input Spark splits (file open cost and partition size lowered) is counted from the parse - the same
    chunks as a count of the raw lines read again - its header id still line 1."""
    from data_platform.checks import HEADER, parse
    from data_platform.inputs import chunk_table, open_input

    def keyed(chunks):
        return [(c["file"], c["start"], c["first_line"]) for c in chunks]

    raw = open_input(spark, [str(synth["raw"])], synth["contract"])
    assert keyed(raw.chunks) == keyed(chunk_table(raw)) == [(0, 0, 1)]
    saved = {k: spark.conf.get(k) for k in ("spark.sql.files.openCostInBytes", "spark.sql.files.maxPartitionBytes")}
    try:
        spark.conf.set("spark.sql.files.openCostInBytes", "1k")
        spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
        split = open_input(spark, [str(synth["raw"])], synth["contract"])
        assert split.chunks is None  # not known before the parse: counted from it
        parsed, release = parse(split, synth["contract"])
        try:
            assert len(split.chunks) > 1 and split.header_ids == [0]
            assert [c["first_line"] for c in split.chunks][:2] == [1, split.chunks[0]["n"] + 1]
            assert split.chunks == chunk_table(split)
            assert parsed.where("rid = 0").first()["code"] == HEADER  # not a record
        finally:
            release()
    finally:
        for k, v in saved.items():
            spark.conf.set(k, v)


def test_curated_parquet_marks_required_columns_required_and_keeps_nulls_of_optional_ones(spark, tmp_path):
    """A required column is never null in a curated row, and the Parquet schema says so; a column the contract
    does not require stays optional and keeps its empty values as nulls."""
    import pyarrow.parquet as pq
    import yaml

    side = generate(tmp_path / "src.data", tmp_path / "src", "opt", rows=200, features=3, classes=2,
                    defect_rate=0.0, seed=5)  # fmt: skip
    frame = pd.read_csv(side["raw"], dtype=str, keep_default_na=False)
    frame.loc[[3, 9], "x01"] = ""
    frame.to_csv(tmp_path / "in.data", index=False)
    doc = yaml.safe_load(Path(side["contract"]).read_text())
    next(p for p in doc["schema"][0]["properties"] if p["name"] == "x01")["required"] = False
    contract = tmp_path / "opt.yaml"
    contract.write_text(yaml.safe_dump(doc))
    result = run_etl(str(tmp_path / "in.data"), str(tmp_path / "lake"), str(contract))
    assert result.rows_curated == 200
    schema = pq.ParquetFile(next(Path(result.path).glob("split=*/*.parquet"))).schema_arrow
    assert {f.name: f.nullable for f in schema if f.name in ("id", "x00", "x01", "x02", "target")} == {
        "id": False, "x00": False, "x01": True, "x02": False, "target": False}  # fmt: skip
    curated = _curated(result.path)
    assert curated["x01"].isna().sum() == 2
    # The statistics count an optional column's values and take a required one's count from the rows.
    stats = json.loads((Path(result.path) / lake_store.MANIFEST).read_text())["column_stats"]
    for name in ("x00", "x01"):
        values = curated[name].dropna()
        assert stats[name]["non_null"] == len(values) == (198 if name == "x01" else 200)
        assert stats[name]["mean"] == pytest.approx(values.mean()) and stats[name]["min"] == values.min()
        assert stats[name]["stddev"] == pytest.approx(values.std())


def test_the_duplicate_rule_for_conflicts_copies_and_spaced_copies_matches_the_oracle(spark, synth, tmp_path):
    """Records sharing a key, as exports repeat them: a pair that differs (both out), an exact copy with a space
    before a delimiter (tokens equal, raw line smaller: the copy is the keeper, the earlier line goes) and a
    record delivered three times (one stays). Lines and reasons as the oracle says, the curated rows too (the
    generated data repeats records only as exact pairs)."""
    lines = synth["raw"].read_text().split("\n")
    bad = {i for rows in synth["sidecar"]["rows_with_defect"].values() for i in rows}
    base = [lines[i + 1] for i in range(80) if i not in bad][:60]
    fields = base[3].split(";")
    fields[2] = str(float(fields[2]) + 1.0)
    repeats = [";".join(fields), base[5].replace(";", " ;", 1), base[7], base[7]]
    raw = tmp_path / "dups.data"
    raw.write_text("\n".join([lines[0], *base[:30], *repeats, *base[30:]]) + "\n")
    result = run_etl(str(raw), str(tmp_path / "lake"), str(synth["contract"].path))
    want, quarantined = expected_rows(synth["contract"], raw.read_text(), split_cuts(0.15, 0.15))
    assert result.quarantine_by_reason == {"duplicate_key": 5}
    quarantine = pd.read_parquet(f"{result.path}/{lake_store.QUARANTINE}")
    assert sorted(zip(quarantine["line"], quarantine["reason"], strict=True)) == quarantined
    assert (7 in quarantine["line"].tolist()) and (33 not in quarantine["line"].tolist())  # spaced copy kept
    got = _curated(result.path)
    assert sorted(str(i) for i in got["id"]) == sorted(want)
