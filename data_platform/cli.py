"""Data platform commands of the `platform` CLI: raw input and the Spark ETL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from platform_core import settings
from platform_core.progress import done, new_app, step

app = new_app(__doc__)


@app.command()
def raw(path: Annotated[str | None, typer.Option(help="Where to write the raw file")] = None) -> Path:
    """Write the raw iris file (UCI iris.data format) from the copy scikit-learn ships."""
    from data_platform.raw import write_raw_iris

    written = write_raw_iris(path or settings.raw_path())
    done(f"raw data: {written}")
    return written


@app.command()
def etl(
    raw_path: Annotated[str | None, typer.Option(help="Raw input file (default: PLATFORM_RAW_PATH)")] = None,
    lake: Annotated[str | None, typer.Option(help="Lake root (default: PLATFORM_LAKE_DIR)")] = None,
):
    """Spark ETL: raw file -> curated Parquet + _manifest.json; bad rows quarantined with a reason."""
    from data_platform.etl import run_etl

    raw_path = raw_path or settings.raw_path()
    if raw_path == settings.raw_path() and not Path(raw_path).exists():
        raw(raw_path)
    with step("Spark ETL (local[*])"):
        result = run_etl(raw_path, lake or settings.lake_dir())
    done(
        f"ETL: {result.rows_in} rows in, {result.rows_curated} curated, {result.rows_quarantined} quarantined "
        f"-> {result.curated_path} ({result.seconds}s)"
    )
    return result
