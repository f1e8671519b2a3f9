"""Synthetic datasets of any shape: a raw CSV, its ODCS contract, and a sidecar listing every injected defect.

Exercises the platform on data that is not iris (other names, other class count, many features) and at scale.
Rows are written in chunks, so memory stays flat however many rows are asked for. Defects are injected at an
exact, known rate, spread evenly over every kind the ETL recognises, and recorded per kind with their row
numbers: a test can check that each one is quarantined with the right reason and no good row is lost.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DEFECT_KINDS = (
    "field_count",
    "missing_value",
    "malformed_number",
    "non_finite",
    "out_of_range",
    "unknown_label",
    "duplicate_key",
)
LABEL = "target"
BOUND = 1000.0  # features are drawn well inside ±BOUND; the out_of_range defect goes past it
_CHUNK = 200_000


def feature_names(n: int) -> list[str]:
    return [f"x{i:02d}" for i in range(n)]


def class_names(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


def contract_doc(name: str, features: int, classes: int, delimiter: str, header: bool, max_rate: float) -> dict:
    number = {"logicalType": "number", "physicalType": "double", "required": True,
              "logicalTypeOptions": {"minimum": -BOUND, "maximum": BOUND}}  # fmt: skip
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": name,
        "name": name,
        "version": "1.0.0",
        "status": "draft",
        "description": {"purpose": f"Synthetic {classes}-class dataset with {features} features (generated)."},
        "servers": [
            {
                "server": "raw",
                "type": "local",
                "format": "csv",
                "path": f"raw/{name}.data",
                "customProperties": [
                    {"property": "delimiter", "value": delimiter},
                    {"property": "header", "value": header},
                ],
            },
        ],  # fmt: skip
        "schema": [
            {
                "name": name,
                "physicalType": "table",
                "properties": [
                    {
                        "name": "id",
                        "logicalType": "integer",
                        "physicalType": "bigint",
                        "required": True,
                        "primaryKey": True,
                        "primaryKeyPosition": 1,
                    },
                    *[{"name": f, **number} for f in feature_names(features)],
                    {
                        "name": LABEL,
                        "logicalType": "string",
                        "physicalType": "string",
                        "required": True,
                        "quality": [
                            {"metric": "invalidValues", "arguments": {"validValues": class_names(classes)}, "mustBe": 0}
                        ],
                    },
                ],  # fmt: skip
            }
        ],
        "customProperties": [
            {"property": "label", "value": LABEL},
            {"property": "maxQuarantineRate", "value": max_rate},
        ],
    }


def _good_chunk(rng: np.random.Generator, start: int, n: int, features: int, classes: int) -> pd.DataFrame:
    y = rng.integers(0, classes, n)
    x = rng.normal(0.0, 1.0, (n, features))
    # A learnable signal: each class shifts a few features of its own.
    for j in range(features):
        x[:, j] += 1.5 * (y == j % classes)
    frame = pd.DataFrame(x, columns=feature_names(features))
    frame.insert(0, "id", np.arange(start, start + n))
    frame[LABEL] = np.array(class_names(classes))[y]
    return frame


def _break(kind: str, line: str, last_good: str, delimiter: str, features: int, rng: np.random.Generator) -> str:
    fields = line.split(delimiter)
    col = 1 + int(rng.integers(0, features))  # a feature column (0 is the id, the last one is the label)
    if kind == "field_count":
        return delimiter.join(fields[:-1])
    if kind == "duplicate_key":
        return last_good  # the same record delivered twice
    if kind == "unknown_label":
        fields[-1] = "c_unknown"
    else:
        fields[col] = {"missing_value": "", "malformed_number": "abc", "non_finite": "nan",
                       "out_of_range": f"{BOUND * 1000:.1f}"}[kind]  # fmt: skip
    return delimiter.join(fields)


def generate(raw_path: str | Path, contract_dir: str | Path, name: str, rows: int, features: int, classes: int,
             defect_rate: float, seed: int = 0, delimiter: str = ",", header: bool = True,
             max_quarantine_rate: float | None = None) -> dict:  # fmt: skip
    """Write `<raw_path>`, `<contract_dir>/<name>.yaml` and `<raw_path>.defects.json`; return the sidecar."""
    if rows < 2 or features < 1 or classes < 2 or not 0 <= defect_rate < 1:
        raise ValueError("need rows >= 2, features >= 1, classes >= 2 and 0 <= defect rate < 1")
    raw_path, contract_dir = Path(raw_path), Path(contract_dir)
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    contract_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_defects = round(rows * defect_rate)
    # Row 0 stays good: a duplicate needs an earlier good record to copy.
    positions = np.sort(rng.choice(np.arange(1, rows), size=n_defects, replace=False))
    kind_of = {int(p): DEFECT_KINDS[i % len(DEFECT_KINDS)] for i, p in enumerate(rng.permutation(positions))}
    lines_by_kind: dict[str, list[int]] = {k: [] for k in DEFECT_KINDS}
    last_good = ""
    with raw_path.open("w") as out:
        if header:
            out.write(delimiter.join(["id", *feature_names(features), LABEL]) + "\n")
        for start in range(0, rows, _CHUNK):
            n = min(_CHUNK, rows - start)
            buf = io.StringIO()
            _good_chunk(rng, start, n, features, classes).to_csv(
                buf, sep=delimiter, header=False, index=False, float_format="%.4f", lineterminator="\n"
            )
            lines = buf.getvalue().split("\n")[:n]
            for i in range(n):
                kind = kind_of.get(start + i)
                if kind is None:
                    last_good = lines[i]
                else:
                    lines[i] = _break(kind, lines[i], last_good, delimiter, features, rng)
                    lines_by_kind[kind].append(start + i)
            out.write("\n".join(lines) + "\n")
    rate = max_quarantine_rate if max_quarantine_rate is not None else min(1.0, max(0.05, 2 * defect_rate))
    contract = contract_doc(name, features, classes, delimiter, header, rate)
    contract_path = contract_dir / f"{name}.yaml"
    contract_path.write_text(yaml.safe_dump(contract, sort_keys=False))
    sidecar = {
        "dataset": name, "raw": str(raw_path), "contract": str(contract_path), "rows": rows,
        "good_rows": rows - n_defects, "defect_rate": defect_rate, "seed": seed,
        "defects": {k: len(v) for k, v in lines_by_kind.items()},
        "rows_with_defect": lines_by_kind,  # 0-based record numbers (header not counted)
    }  # fmt: skip
    Path(f"{raw_path}.defects.json").write_text(json.dumps(sidecar))
    return sidecar
