"""An independent reading of a raw CSV against a contract, in plain Python (no Spark): what the curated table and
the quarantine must hold. Shares no code with the ETL except the contract loader."""

from __future__ import annotations

import hashlib
import math
import re

from data_platform.contract import Contract

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_RANGE_OK = {"minimum": float.__ge__, "maximum": float.__le__, "exclusiveMinimum": float.__gt__,
             "exclusiveMaximum": float.__lt__}  # fmt: skip


def _number(tok: str) -> float | None:
    if tok.lower() in _NON_FINITE:
        return float(tok)
    return float(tok) if _NUMBER.match(tok) else None


def _row_reason(contract: Contract, fields: list[str]) -> str | None:
    if len(fields) != len(contract.columns):
        return "field_count"
    for col, raw in zip(contract.columns, fields, strict=True):
        tok = raw.strip(" ")
        if tok == "":
            if col.required:
                return "missing_value"
            continue
        if col.type == "integer" and not re.fullmatch(r"[+-]?\d+", tok):
            return "malformed_number"
        if col.type == "number":
            value = _number(tok)
            if value is None:
                return "malformed_number"
            if not math.isfinite(value):
                return "non_finite"
            if any(not _RANGE_OK[key](value, bound) for key, bound in col.ranges):
                return "out_of_range"
        if col.allowed is not None and tok not in col.allowed:
            return "unknown_label" if col.name == contract.label else "invalid_value"
    return None


def split_of(key: str, cuts: tuple[int, int]) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:15], 16) % 10_000
    return "train" if bucket < cuts[0] else "valid" if bucket < cuts[1] else "test"


def expected(contract: Contract, text: str, cuts: tuple[int, int]) -> tuple[dict[str, tuple], dict[str, int]]:
    """-> ({key: (record tokens, split)} of curated rows, {reason: count} of quarantined ones)."""
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip(" ")]
    if contract.header:
        lines = [line for line in lines if line != contract.delimiter.join(contract.names)]
    reasons: dict[str, int] = {}
    by_key: dict[str, list[tuple]] = {}
    key_idx = [contract.names.index(n) for n in contract.key_columns]
    for line in lines:
        fields = line.split(contract.delimiter)
        reason = _row_reason(contract, fields)
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        tokens = tuple(f.strip(" ") for f in fields)
        by_key.setdefault("\x1f".join(tokens[i] for i in key_idx), []).append(tokens)
    curated = {}
    for key, records in by_key.items():
        if len(set(records)) == 1:
            curated[key] = (records[0], split_of(key, cuts))
            dupes = len(records) - 1
        else:
            dupes = len(records)
        if dupes:
            reasons["duplicate_key"] = reasons.get("duplicate_key", 0) + dupes
    return curated, reasons
