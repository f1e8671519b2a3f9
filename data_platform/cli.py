"""Data platform commands of the `platform` CLI: sample and synthetic raw data, the Spark ETL, dataset versions,
and the cluster rendering of the same ETL job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from platform_core import settings
from platform_core.progress import console, done, new_app, step, styled

app = new_app(__doc__)


@app.command()
def raw(path: Annotated[str | None, typer.Option(help="Where to write the raw file")] = None) -> Path:
    """Write the sample dataset's raw file (UCI iris.data format) from the copy scikit-learn ships."""
    from data_platform.contract import load_contract, local_raw_path
    from data_platform.raw import SAMPLE_DATASET, write_raw_iris

    written = write_raw_iris(path or local_raw_path(load_contract(SAMPLE_DATASET)))
    done(f"raw data: {written}")
    return written


@app.command()
def etl(
    raw_path: Annotated[
        str | None, typer.Option(help="Raw input file/dir (default: PLATFORM_RAW_PATH, else the contract's path)")
    ] = None,
    lake: Annotated[str | None, typer.Option(help="Lake root (default: PLATFORM_LAKE_DIR)")] = None,
):
    """Spark ETL: raw files + contract -> a versioned curated dataset; bad rows quarantined with a reason."""
    from data_platform.contract import load_contract
    from data_platform.etl import run_etl

    contract = load_contract()  # a bad contract fails here, before Spark starts
    with step(f"Spark ETL of {contract.dataset} ({settings.SPARK_MASTER.get()})"):
        result = run_etl(raw_path, lake, contract.dataset)
    reasons = ", ".join(f"{r} {n}" for r, n in result.quarantine_by_reason.items()) or "none"
    splits = "/".join(str(n) for n in result.rows_by_split.values())
    what = "unchanged input, reusing" if result.reused else "published"
    done(
        f"ETL {result.dataset}: {result.rows_in} rows in, {result.rows_curated} curated (train/valid/test {splits}), "
        f"{result.rows_quarantined} quarantined ({reasons}); {what} v={result.version} -> {result.path} "
        f"({result.seconds}s)"
    )
    return result


@app.command()
def versions(lake: Annotated[str | None, typer.Option(help="Lake root (default: PLATFORM_LAKE_DIR)")] = None):
    """List the dataset's versions with row counts and content hashes; * marks the one readers see."""
    from data_platform.lake import list_versions

    dataset = settings.DATASET.get()
    table = Table("", "version", "created", "rows in", "curated", "train/valid/test", "quarantined", "content hash",
                  title=f"dataset {dataset}")  # fmt: skip
    entries = list_versions(lake or settings.lake_dir(), dataset)
    for e in entries:
        if e.get("incomplete"):
            table.add_row("", str(e["version"]), styled("incomplete (run did not finish)", "yellow"), *[""] * 5)
            continue
        table.add_row("*" if e["latest"] else "", str(e["version"]), e["created_at"], str(e["rows_in"]),
                      str(e["rows_curated"]), "/".join(str(n) for n in e["rows_by_split"].values()),
                      str(e["rows_quarantined"]), e["content_hash"][:16])  # fmt: skip
    console.print(table)
    done(f"{len(entries)} version(s) of {dataset}")
    return entries


@app.command()
def gc(
    keep: Annotated[int, typer.Option(help="Complete versions to keep (newest first)")] = 3,
    lake: Annotated[str | None, typer.Option(help="Lake root (default: PLATFORM_LAKE_DIR)")] = None,
):
    """Delete old dataset versions (never the one readers see) and leftovers of runs that did not finish."""
    from data_platform.lake import gc as collect

    dataset = settings.DATASET.get()
    deleted = collect(lake or settings.lake_dir(), dataset, keep)
    done(f"gc {dataset}: deleted {len(deleted)} version(s) {deleted}, kept the newest {keep}")
    return deleted


@app.command()
def generate(
    rows: Annotated[int, typer.Option(help="Records to write")] = 10_000,
    features: Annotated[int, typer.Option(help="Numeric feature columns")] = 20,
    classes: Annotated[int, typer.Option(help="Label classes")] = 2,
    defect_rate: Annotated[float, typer.Option(help="Share of records broken on purpose (all kinds)")] = 0.01,
    name: Annotated[str, typer.Option(help="Dataset name")] = "synth",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    contracts_dir: Annotated[str | None, typer.Option(help="Where to write the contract")] = None,
    raw_path: Annotated[str | None, typer.Option(help="Where to write the raw file")] = None,
):
    """Write a synthetic raw dataset, its contract and a sidecar of the injected defects."""
    from data_platform.generate import generate as write

    contracts_dir = contracts_dir or str(settings.state_dir() / "contracts")
    raw_path = raw_path or str(settings.state_dir() / "raw" / f"{name}.data")
    with step(f"Generating {rows} rows of {name}"):
        sidecar = write(raw_path, contracts_dir, name, rows, features, classes, defect_rate, seed)
    done(
        f"{name}: {rows} rows ({rows - sidecar['good_rows']} defective) -> {raw_path}, contract {sidecar['contract']}; "
        f"use it with PLATFORM_DATASET={name} PLATFORM_CONTRACTS_DIR={contracts_dir} PLATFORM_RAW_PATH={raw_path}"
    )
    return sidecar


@app.command("render-k8s")
def render_k8s(
    out: Annotated[str | None, typer.Option(help="Output dir (default: manifests/base/spark)")] = None,
):
    """Render the ETL as a Stackable SparkApplication + S3Connection (kustomize base) from settings."""
    from data_platform.k8s import OUT_DIR, write_manifests

    written = write_manifests(Path(out) if out else OUT_DIR)
    done(f"rendered {', '.join(p.name for p in written)} -> {written[0].parent}")
    return written
