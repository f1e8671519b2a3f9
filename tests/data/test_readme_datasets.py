"""The README's synthetic-dataset commands, run as written (tests/readme.py): generate a raw file and its contract,
then the ETL of that dataset on settings alone, each as its own `task` process (a fresh Spark)."""

from __future__ import annotations

import re

from tests import readme


def test_the_generated_dataset_goes_through_the_etl_on_settings_alone():
    generated = readme.run(readme.command("task etl:generate")).stdout
    rows, defective = map(int, re.search(r"synth: (\d+) rows \((\d+) defective\)", generated).groups())
    etl = readme.run(readme.command("PLATFORM_DATASET=synth PLATFORM_CONTRACTS_DIR=.platform/contracts task etl"))
    found = re.search(r"ETL synth: (\d+) rows in, (\d+) curated .*?, (\d+) quarantined", etl.stdout)
    assert found, etl.stdout
    assert tuple(map(int, found.groups())) == (rows, rows - defective, defective)
    assert "Traceback" not in etl.stdout
