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


def reshape(side: dict, out: Path, orders: list[list[str]], rename: dict[str, str], extra: str | None = "note",
            **raw_props) -> tuple[Path, Path]:  # fmt: skip
    """A generated dataset as an export writes it: its records split over one file per entry of `orders`, each
    file's columns in that order (contract names) with a header, some named otherwise in the header (`rename`:
    contract name -> header name, recorded as physicalName), and an `extra` column the contract does not name.
    -> (directory of the files, contract path). `raw_props` set customProperties of the raw server."""
    import yaml

    doc = yaml.safe_load(Path(getattr(side["contract"], "path", side["contract"])).read_text())
    names = [p["name"] for p in doc["schema"][0]["properties"]]
    for prop in doc["schema"][0]["properties"]:
        if prop["name"] in rename:
            prop["physicalName"] = rename[prop["name"]]
    for key, value in raw_props.items():
        doc["servers"][0]["customProperties"].append({"property": key, "value": value})
    contract = out / "contracts" / f"{doc['id']}.yaml"
    contract.parent.mkdir(parents=True, exist_ok=True)
    contract.write_text(yaml.safe_dump(doc, sort_keys=False))
    delim = doc["servers"][0]["customProperties"][0]["value"]
    records = Path(side["raw"]).read_text().rstrip("\n").split("\n")[1:]
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    per_file = -(-len(records) // len(orders))
    for n, order in enumerate(orders):
        lines = [delim.join([rename.get(c, c) for c in order] + ([extra] if extra else []))]
        for record in records[n * per_file : (n + 1) * per_file]:
            fields = record.split(delim)
            if len(fields) == len(names):
                fields = [fields[names.index(c)] for c in order]
            lines.append(delim.join(fields + (["x"] if extra else [])))
        (raw / f"part-{n}.csv").write_text("\n".join(lines) + "\n")
    return raw, contract
