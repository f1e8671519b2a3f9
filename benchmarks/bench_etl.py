"""Benchmark: the platform's Spark ETL (local[2]) against single-node peers on the same generated file.

Engines: `spark` (the platform's ETL, a fresh JVM per run), `spark-server` (the same ETL through the long-lived
local Spark Connect server of PLATFORM_SPARK_SERVER: one untimed run on a new server first, its time printed,
then every repeat a fresh client process on the warm server; the server's RSS counted), `duckdb-mirror` (DuckDB
doing the ETL's exact work as the ETL once planned it: lines, window sorts per key), `duckdb` and `polars`
(natural: written as an expert would, etl_peers.py), and the `floor` (read the file, write it as Parquet: what no
engine can skip). All are limited to 2 threads like local[2]. Each engine runs in a fresh process per repeat
(timing starts once the engine is up, so JVM start-up is not counted; peak RSS covers the whole process tree, JVM
included). After each run the curated Parquet it wrote is read back and fingerprinted (rows per split, sum of row
hashes, sum of a feature): every engine must have written the same rows. Medians of the repeats are printed, with
ratios to the best natural peer and the floor. `--profile` writes Spark's event log and prints where its time went
(per job and stage: spark_events.py).

    task bench:etl -- --rows 1000000 10000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


ENGINES = ("spark", "spark-server", "duckdb-mirror", "duckdb", "polars", "floor")
SPARKS = ("spark", "spark-server")
NATURAL = ("duckdb", "polars")


def _run_spark(raw: str, lake: str, contracts: str) -> dict:
    os.environ["PLATFORM_CONTRACTS_DIR"] = contracts
    from data_platform.etl import run_etl
    from data_platform.spark import get_session

    get_session()  # start-up outside the timing
    start = time.monotonic()
    result = run_etl(raw, lake, "bench")
    return {"seconds": time.monotonic() - start, "curated_dir": result.path}


def _run_peer(engine: str, raw: str, out: str, contracts: str) -> dict:
    import etl_peers

    from data_platform.contract import load_contract

    contract = load_contract(str(Path(contracts) / "bench.yaml"))
    run = {"duckdb": etl_peers.duckdb_natural, "polars": etl_peers.polars_natural, "floor": etl_peers.floor}
    return run[engine](contract, raw, out)


def fingerprint(curated_dir: str) -> tuple:
    """What every engine's curated Parquet must agree on: rows per split, sum of row hashes, sum of a feature.
    Read per split directory (engines differ in whether the files repeat the partition column)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    splits, total, x00 = {}, 0, 0.0
    for d in sorted(Path(curated_dir).glob("split=*")):
        table = pads.dataset(str(d), format="parquet", partitioning=None).to_table(columns=["row_hash", "x00"])
        splits[d.name.split("=", 1)[1]] = table.num_rows
        total += sum(int(v) for v in table["row_hash"].to_pylist())
        x00 += pc.sum(table["x00"]).as_py() or 0.0
    return sum(splits.values()), tuple(sorted(splits.items())), total, round(x00, 2)


def _duckdb_sql(contract, raw: str, out: str, cuts: tuple[int, int]) -> list[str]:
    n = len(contract.columns)
    toks = {c.name: f"trim(f[{i + 1}], ' ')" for i, c in enumerate(contract.columns)}
    checks = [f"len(f) <> {n}", "'field_count'"]
    for c in contract.columns:
        tok = toks[c.name]
        val = f"TRY_CAST({tok} AS DOUBLE)" if c.type == "number" else f"TRY_CAST({tok} AS BIGINT)"
        if c.required:
            checks += [f"coalesce({tok}, '') = ''", "'missing_value'"]
        if c.numeric:
            checks += [f"{tok} <> '' AND {val} IS NULL", "'malformed_number'"]
        if c.type == "number":
            checks += [f"isnan({val}) OR isinf({val})", "'non_finite'"]
        ops = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        for key, bound in c.ranges:
            checks += [f"{tok} <> '' AND NOT ({val} {ops[key]} {bound})", "'out_of_range'"]
        if c.allowed is not None:
            allowed = ", ".join(f"'{v}'" for v in c.allowed)
            checks += [f"{tok} <> '' AND {tok} NOT IN ({allowed})", "'unknown_label'"]
    reason = "CASE " + " ".join(f"WHEN {checks[i]} THEN {checks[i + 1]}" for i in range(0, len(checks), 2)) + " END"
    key = " || chr(31) || ".join(f"coalesce({toks[k]}, '')" for k in contract.key_columns)
    record = " || chr(31) || ".join(f"coalesce({toks[k]}, '')" for k in contract.names)
    typed = ", ".join(
        f"TRY_CAST({toks[c.name]} AS {'DOUBLE' if c.type == 'number' else 'BIGINT'}) AS {c.name}" if c.numeric
        else f"{toks[c.name]} AS {c.name}" for c in contract.columns
    )  # fmt: skip
    classes = ", ".join(f"'{v}'" for v in contract.classes)
    header = f"WHERE line <> '{contract.delimiter.join(contract.names)}'" if contract.header else ""
    return [
        f"""CREATE TEMP TABLE lines AS SELECT line, string_split(line, '{contract.delimiter}') AS f
            FROM read_csv('{raw}', columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', escape='', header=false)
            {header}""",
        f"""CREATE TEMP TABLE checked AS
            WITH r AS (SELECT *, {reason} AS row_reason, {key} AS key, {record} AS record
                       FROM lines WHERE trim(line) <> ''),
            w AS (SELECT *, row_number() OVER (PARTITION BY key ORDER BY row_reason IS NOT NULL, record, line) AS rn,
                  min(CASE WHEN row_reason IS NULL THEN record END) OVER (PARTITION BY key) AS lo,
                  max(CASE WHEN row_reason IS NULL THEN record END) OVER (PARTITION BY key) AS hi FROM r)
            SELECT *, coalesce(row_reason, CASE WHEN rn > 1 OR lo <> hi THEN 'duplicate_key' END) AS reason,
                   ('0x' || substr(sha256(key), 1, 15))::BIGINT AS row_hash FROM w""",
        f"""COPY (SELECT {typed}, list_position([{classes}], {toks[contract.label]}) - 1 AS class_index, row_hash,
                   CASE WHEN row_hash % 10000 < {cuts[0]} THEN 'train' WHEN row_hash % 10000 < {cuts[1]} THEN 'valid'
                        ELSE 'test' END AS split
                  FROM checked WHERE reason IS NULL)
            TO '{out}/curated' (FORMAT PARQUET, PARTITION_BY (split))""",
        f"COPY (SELECT line AS raw_line, reason FROM checked WHERE reason IS NOT NULL) TO '{out}/quarantine.parquet'"
        " (FORMAT PARQUET)",
    ]  # noqa: E501


def _run_duckdb(raw: str, out: str, contracts: str) -> dict:
    import duckdb

    from data_platform.checks import split_cuts
    from data_platform.contract import load_contract

    contract = load_contract(str(Path(contracts) / "bench.yaml"))
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"SET temp_directory = '{out}/tmp'")
    start = time.monotonic()
    for sql in _duckdb_sql(contract, raw, out, split_cuts(0.15, 0.15)):
        con.execute(sql)
    return {"seconds": time.monotonic() - start, "curated_dir": f"{out}/curated"}


def _measure(engine: str, raw: str, contracts: str, profile: bool = False, state: str | None = None) -> dict:
    """One fresh process: its timing (from the child), the peak RSS of its whole process tree (polled; with the
    Spark server's, which is not its child), and the fingerprint of the curated rows it wrote."""
    from platform_core import stack

    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as out:
        env = {**os.environ, "PLATFORM_SPARK_MASTER": "local[2]", "SPARK_LOCAL_IP": "127.0.0.1",
               "POLARS_MAX_THREADS": "2", "PYTHONPATH": str(Path(__file__).parent)}  # fmt: skip
        if state:
            env.update(PLATFORM_STATE_DIR=state, PLATFORM_SPARK_SERVER="1")
        if profile and engine == "spark":
            Path(f"{out}/events").mkdir()
            env["PYSPARK_SUBMIT_ARGS"] = (f"--conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false "
                                          f"--conf spark.eventLog.dir=file://{out}/events pyspark-shell")  # fmt: skip
        log = open(f"{out}/stderr.log", "w")  # noqa: SIM115 - closed below, after the child exits
        proc = subprocess.Popen([sys.executable, __file__, "--child", engine, raw, out, contracts], env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
        peak = 0
        done = threading.Event()

        def poll():
            nonlocal peak
            root = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                    if state and (server := stack.spark_server()):  # the state dir _on_server set
                        procs.append(psutil.Process(server["pid"]))
                    peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
                except psutil.Error:
                    pass
                time.sleep(0.1)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        stdout, _ = proc.communicate()
        done.set()
        watcher.join()
        log.close()
        if proc.returncode != 0:
            lines = Path(f"{out}/stderr.log").read_text().strip().splitlines()
            # A JVM failure ends in stack frames; the cause is the first Error/Exception line.
            causes = [line for line in lines if ("Error" in line or "Exception" in line) and not line.startswith("\t")]
            raise SystemExit(f"{engine} run failed (exit {proc.returncode}):\n" + "\n".join(causes[:3] + lines[-5:]))
        run = {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": peak / 2**20}
        run["fingerprint"] = fingerprint(run["curated_dir"]) if run["curated_dir"] else None
        if profile and engine == "spark":
            from spark_events import summarize

            run["profile"] = summarize(f"{out}/events")
        return run


def _on_server(raw: str, contracts: str, repeats: int) -> tuple[list[dict], float]:
    """The spark-server engine: a new server (in a private state dir) and one untimed run on it, then `repeats`
    fresh client processes; the server is stopped at the end -> (the repeats, the first run's seconds)."""
    from platform_core import stack

    # This process reads the server's record (its RSS) and stops it through the same state dir as its clients.
    with (
        tempfile.TemporaryDirectory(prefix="bench-spark-server-state-") as state,
        mock.patch.dict(os.environ, PLATFORM_STATE_DIR=state),
    ):
        try:
            first = _measure("spark", raw, contracts, state=state)["seconds"]
            return [_measure("spark", raw, contracts, state=state) for _ in range(repeats)], first
        finally:
            stack.stop_spark_server()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--defect-rate", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--profile", action="store_true", help="Spark's event log: time per job and stage")
    args = parser.parse_args()
    from data_platform.generate import generate

    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench-etl-") as tmp:
            start = time.monotonic()
            side = generate(f"{tmp}/bench.data", tmp, "bench", rows, args.features, args.classes, args.defect_rate)
            size = Path(side["raw"]).stat().st_size / 2**20
            print(f"\n{rows:,} rows x {args.features} features, {size:.0f} MiB, {args.defect_rate:.0%} defects "
                  f"(generated in {time.monotonic() - start:.0f}s); {args.repeats} repeats, medians:")  # fmt: skip
            results, prints = {}, set()
            for engine in args.engines:
                if engine == "spark-server":
                    runs, first = _on_server(side["raw"], tmp, args.repeats)
                else:
                    runs, first = [_measure(engine, side["raw"], tmp, args.profile) for _ in range(args.repeats)], None
                prints |= {r["fingerprint"] for r in runs if r["fingerprint"]}
                assert all(r["fingerprint"] is None or r["fingerprint"][0] == side["good_rows"] for r in runs), (
                    engine, runs, side["good_rows"])  # fmt: skip
                seconds = statistics.median(r["seconds"] for r in runs)
                rss = statistics.median(r["peak_rss_mb"] for r in runs)
                results[engine] = (seconds, rss)
                walls = ", ".join(f"{r['seconds']:.1f}s" for r in runs)
                cold = f"; first run on a new server {first:.1f}s" if first is not None else ""
                print(f"  {engine:13s} {rows / seconds:>12,.0f} rows/s  {seconds:7.1f} s  peak RSS {rss:7.0f} MiB  "
                      f"(runs: {walls}{cold})", flush=True)  # fmt: skip
                for line in runs[-1].get("profile", []):
                    print(f"      {line}")
            assert len(prints) == 1, f"the engines wrote different curated rows: {prints}"
            print(f"  curated rows identical across engines: {prints.pop()}")
            natural = [e for e in NATURAL if e in results]
            sparks = [e for e in SPARKS if e in results]
            if sparks and natural:
                best = min(natural, key=lambda e: results[e][0])
                line = "  ratio   " + ", ".join(f"{e} / best natural peer ({best}): "
                                                f"{results[e][0] / results[best][0]:.1f}x" for e in sparks)  # fmt: skip
                if "floor" in results:
                    line += "; " + ", ".join(f"{e} / floor {results[e][0] / results['floor'][0]:.1f}x"
                                             for e in results if e != "floor")  # fmt: skip
                print(line)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        engine, raw, out, contracts = sys.argv[2:6]
        if engine == "spark":
            run = _run_spark(raw, f"{out}/lake", contracts)
        elif engine == "duckdb-mirror":
            run = _run_duckdb(raw, out, contracts)
        else:
            run = _run_peer(engine, raw, out, contracts)
        print(json.dumps(run), flush=True)
    else:
        main()
