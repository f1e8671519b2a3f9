"""Fixtures of the data-platform tests: generated datasets (raw file + contract + defect sidecar)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_platform.contract import load_contract
from data_platform.generate import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A 3-class, 6-feature dataset with 7% defects (30 of each kind), header, `;` delimiter."""
    root = tmp_path_factory.mktemp("synth")
    sidecar = generate(root / "raw" / "synth.data", root / "contracts", "synth", rows=3000, features=6, classes=3,
                       defect_rate=0.07, seed=3, delimiter=";", header=True, max_quarantine_rate=0.1)  # fmt: skip
    contract = load_contract(sidecar["contract"])
    return {"root": root, "raw": Path(sidecar["raw"]), "contract": contract, "sidecar": sidecar,
            "lake": str(root / "lake")}  # fmt: skip


def sidecar_of(raw: Path) -> dict:
    return json.loads(Path(f"{raw}.defects.json").read_text())
