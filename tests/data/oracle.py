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


def _layout(contract: Contract, header: str) -> tuple[list[int], int]:
    """Line 1 of a file with a header -> (field index of each contract column, fields per record)."""
    names = [h.strip(" ") for h in header.split(contract.delimiter)]
    names[0] = names[0].lstrip("\ufeff")
    sources = [c.physical or c.name for c in contract.columns]
    return [names.index(n) for n in sources], len(names)


def expected_rows(contract: Contract, text: str, cuts: tuple[int, int]) -> tuple[dict[str, tuple], list[tuple]]:
    """-> ({key: (record tokens in contract order, split)} of curated rows, [(line number, reason)] of quarantined
    ones). Only line 1 is a header (when the contract says so); blank lines count as lines but are no records."""
    numbered = [(i + 1, line.rstrip("\r")) for i, line in enumerate(text.split("\n"))]
    if contract.header:
        positions, width = _layout(contract, numbered[0][1])
        numbered = numbered[1:]
    else:
        positions, width = list(range(len(contract.columns))), len(contract.columns)
    quarantined: list[tuple] = []
    by_key: dict[str, list[tuple]] = {}
    key_idx = [contract.names.index(n) for n in contract.key_columns]
    for number, line in numbered:
        if not line.strip(" "):
            continue
        raw = line.split(contract.delimiter)
        reason = "field_count" if len(raw) != width else _row_reason(contract, [raw[p] for p in positions])
        if reason:
            quarantined.append((number, reason))
            continue
        tokens = tuple(raw[p].strip(" ") for p in positions)
        by_key.setdefault("\x1f".join(tokens[i] for i in key_idx), []).append((tokens, line, number))
    curated = {}
    for key, records in by_key.items():
        if len({tokens for tokens, _, _ in records}) == 1:
            kept = min(records, key=lambda r: (r[1], r[2]))  # exact copies: the first by (raw line, line) stays
            curated[key] = (kept[0], split_of(key, cuts))
            quarantined += [(number, "duplicate_key") for _, _, number in records if number != kept[2]]
        else:
            quarantined += [(number, "duplicate_key") for _, _, number in records]
    return curated, sorted(quarantined)


def expected(contract: Contract, text: str, cuts: tuple[int, int]) -> tuple[dict[str, tuple], dict[str, int]]:
    """-> ({key: (record tokens, split)} of curated rows, {reason: count} of quarantined ones)."""
    curated, quarantined = expected_rows(contract, text, cuts)
    reasons: dict[str, int] = {}
    for _, reason in quarantined:
        reasons[reason] = reasons.get(reason, 0) + 1
    return curated, reasons
