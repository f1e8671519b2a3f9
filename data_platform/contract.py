"""Data contracts: an ODCS v3 YAML file describes a dataset; everything downstream reads names from it.

Only the subset of ODCS the ETL enforces is interpreted here (one schema object; properties with logicalType,
physicalName, required, primaryKey, logicalTypeOptions ranges, and an `invalidValues` quality rule with
`validValues`; the `raw` server's format and `path` or `location`). The things ODCS has no key for are
contract-level customProperties (`label`, `maxQuarantineRate`) and the raw server's customProperties
(`delimiter`, `header`, `extraColumns`). A contract that breaks a rule is rejected with one line naming the key,
before Spark starts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from platform_core import settings
from platform_core.errors import ConfigError

TYPES = ("number", "integer", "string")
FORMATS = ("csv", "parquet")
# Columns the ETL adds to the curated table; a contract may not use these names.
RESERVED = ("class_index", "split", "row_hash")
RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
EXTRA_COLUMNS = ("ignore", "refuse")  # what a header with columns the contract does not name gets
SERVER_TYPES = ("local", "s3")


@dataclass(frozen=True)
class Column:
    name: str  # an identifier: the curated table's and the model's name for the column
    type: str
    required: bool
    ranges: tuple[tuple[str, float], ...] = ()  # (ODCS range key, bound)
    allowed: tuple[str, ...] | None = None
    physical: str = ""  # the source's name for it (ODCS physicalName; default: name), matched against a header

    @property
    def source(self) -> str:
        return self.physical or self.name

    @property
    def numeric(self) -> bool:
        return self.type in ("number", "integer")


@dataclass(frozen=True)
class Contract:
    dataset: str
    version: str
    path: str
    sha256: str
    columns: tuple[Column, ...]
    label: str
    classes: tuple[str, ...]
    key: tuple[str, ...]  # empty: no natural key, the whole record is the key
    input_format: str
    delimiter: str
    header: bool
    max_quarantine_rate: float
    extra_columns: str = "ignore"
    server_type: str = "local"
    raw_location: str | None = None  # the raw server's `path` (local) or `location` (s3), as written

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key_columns(self) -> list[str]:
        return list(self.key) or self.names

    @property
    def features(self) -> list[str]:
        """Model inputs: numeric columns that are neither the label nor part of a declared key."""
        return [c.name for c in self.columns if c.numeric and c.name != self.label and c.name not in self.key]

    @property
    def sources(self) -> list[str]:
        """The source column names (header names, Parquet columns), in contract order."""
        return [c.source for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def local_raw_path(contract: Contract) -> str:
    """The raw input of a local run: PLATFORM_RAW_PATH, else the contract's raw server (`path` relative to the
    state dir, or absolute), else <state>/raw/<dataset>.data."""
    if settings.RAW_PATH.is_set():
        return settings.RAW_PATH.get()
    location = contract.raw_location
    if location is None:
        return str(settings.state_dir() / "raw" / f"{contract.dataset}.data")
    if contract.server_type == "s3" or _is_uri(location):
        raise ConfigError(
            f"the raw server of {contract.path} is {location}, which a local run cannot read",
            "set PLATFORM_RAW_PATH to a local copy (or give the raw server a local `path`)",
        )
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else settings.state_dir() / path)


def cluster_raw_path(contract: Contract, bucket: str) -> str:
    """The raw input of the cluster ETL (s3a://): PLATFORM_K8S_RAW_PATH, else the raw server's s3 `location`, else
    its relative `path` under `bucket` (the state dir's layout, raw/..., mirrored in the deployment's bucket)."""
    if settings.K8S_RAW_PATH.is_set():
        return settings.K8S_RAW_PATH.get()
    location = contract.raw_location or f"raw/{contract.dataset}.data"
    if _is_uri(location):
        return "s3a://" + location.split("://", 1)[1]
    if Path(location).is_absolute():
        raise ConfigError(
            f"the raw server of {contract.path} has the absolute local path {location}, which no cluster can read",
            "give it a path relative to the state dir (it maps to the bucket) or an s3 location",
        )
    return f"s3a://{bucket}/{location.removeprefix('./')}"


def _is_uri(location: str) -> bool:
    return "://" in location


def contract_path(dataset: str | None = None) -> Path:
    dataset = dataset or settings.DATASET.get()
    return Path(settings.CONTRACTS_DIR.get()) / f"{dataset}.yaml"


def load_contract(dataset_or_path: str | Path | None = None) -> Contract:
    """Load and check a contract: a dataset name (looked up in PLATFORM_CONTRACTS_DIR) or a file path."""
    ref = dataset_or_path or settings.DATASET.get()
    path = Path(ref) if str(ref).endswith((".yaml", ".yml")) else contract_path(str(ref))
    if not path.is_file():
        raise ConfigError(
            f"no contract {path}", "write one (see contracts/iris.yaml) or set PLATFORM_DATASET/PLATFORM_CONTRACTS_DIR"
        )
    raw = path.read_bytes()
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"contract {path}: malformed YAML{where}", "fix the YAML syntax") from exc
    return parse_contract(doc, str(path), hashlib.sha256(raw).hexdigest())


def parse_contract(doc: Any, path: str, sha256: str = "") -> Contract:
    check = _Checker(path)
    check.that(isinstance(doc, dict), "(top level)", "must be a mapping")
    check.that(str(doc.get("apiVersion", "")).startswith("v3."), "apiVersion", "must be an ODCS v3 version (v3.x.y)")
    check.that(doc.get("kind") == "DataContract", "kind", "must be DataContract")
    dataset = doc.get("id")
    check.that(isinstance(dataset, str) and dataset.replace("_", "").replace("-", "").isalnum(), "id",
               "must be a dataset name (letters, digits, - and _)")  # fmt: skip
    schema = doc.get("schema")
    check.that(isinstance(schema, list) and len(schema) == 1, "schema", "must list exactly one table")
    check.that(isinstance(schema[0], dict), "schema[0]", "must be a mapping")
    props = schema[0].get("properties")
    check.that(isinstance(props, list) and props, "schema[0].properties", "must be a non-empty list")
    columns = tuple(_column(check, i, p) for i, p in enumerate(props))
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    check.that(not dupes, "schema[0].properties", f"duplicate column names {dupes}")
    custom = _custom(check, doc.get("customProperties"), "customProperties")
    label = custom.get("label")
    check.that(label in names, "customProperties.label", f"must name one of the columns {names}, got {label!r}")
    label_col = next(c for c in columns if c.name == label)
    check.that(label_col.allowed is not None and len(label_col.allowed) >= 2, f"schema[0].properties[{label}].quality",
               "needs an invalidValues rule whose validValues list the classes (at least 2)")  # fmt: skip
    check.that(label_col.required, f"schema[0].properties[{label}].required", "the label column must be required")
    key = tuple(
        c.name
        for _, c in sorted(
            ((p.get("primaryKeyPosition", -1), c) for p, c in zip(props, columns, strict=True) if p.get("primaryKey")),
            key=lambda pc: pc[0],
        )  # fmt: skip
    )
    rate = custom.get("maxQuarantineRate", 0.05)
    check.that(isinstance(rate, int | float) and 0 <= rate <= 1, "customProperties.maxQuarantineRate",
               "must be a number between 0 and 1")  # fmt: skip
    server = _raw_server(check, doc.get("servers"))
    sources = [c.source for c in columns]
    dupes = sorted({n for n in sources if sources.count(n) > 1})
    check.that(not dupes, "schema[0].properties", f"duplicate physical (source) names {dupes}")
    if server["format"] == "csv":
        bad = [n for n in sources if server["delimiter"] in n or n != n.strip(" ")]
        check.that(not bad, "schema[0].properties", f"physical names {bad} contain the delimiter or edge spaces")
    contract = Contract(
        dataset=dataset, version=str(doc.get("version", "")), path=path, sha256=sha256, columns=columns,
        label=label, classes=label_col.allowed, key=key, input_format=server["format"],
        delimiter=server["delimiter"], header=server["header"], max_quarantine_rate=float(rate),
        extra_columns=server["extra_columns"], server_type=server["type"], raw_location=server["location"],
    )  # fmt: skip
    check.that(contract.features, "schema[0].properties", "needs at least one numeric feature column")
    return contract


class _Checker:
    def __init__(self, path: str):
        self.path = path

    def that(self, ok: Any, key: str, problem: str) -> None:
        if not ok:
            raise ConfigError(f"contract {self.path}: {key} {problem}", f"fix {key} in {self.path}")


def _column(check: _Checker, i: int, prop: Any) -> Column:
    where = f"schema[0].properties[{i}]"
    check.that(isinstance(prop, dict), where, "must be a mapping")
    name = prop.get("name")
    check.that(isinstance(name, str) and name.isidentifier(), f"{where}.name", f"must be an identifier, got {name!r}")
    where = f"schema[0].properties[{name}]"
    check.that(name not in RESERVED, f"{where}.name", f"is reserved for the ETL's own columns {list(RESERVED)}")
    physical = prop.get("physicalName", "")
    check.that(isinstance(physical, str) and (physical == "" or physical.strip()), f"{where}.physicalName",
               f"must be the source column's name, got {physical!r}")  # fmt: skip
    kind = prop.get("logicalType")
    check.that(kind in TYPES, f"{where}.logicalType", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    options = prop.get("logicalTypeOptions") or {}
    check.that(isinstance(options, dict), f"{where}.logicalTypeOptions", "must be a mapping")
    ranges = []
    for key in RANGE_KEYS:
        if key in options:
            bound = options[key]
            check.that(kind != "string", f"{where}.logicalTypeOptions.{key}", "applies to numeric columns only")
            check.that(isinstance(bound, int | float) and not isinstance(bound, bool) and math.isfinite(bound),
                       f"{where}.logicalTypeOptions.{key}", f"must be a finite number, got {bound!r}")  # fmt: skip
            ranges.append((key, float(bound)))
    allowed = None
    for j, rule in enumerate(prop.get("quality") or []):
        check.that(isinstance(rule, dict), f"{where}.quality[{j}]", "must be a mapping")
        if rule.get("metric") == "invalidValues":
            values = (rule.get("arguments") or {}).get("validValues")
            check.that(isinstance(values, list) and values, f"{where}.quality[{j}].arguments.validValues",
                       "must be a non-empty list")  # fmt: skip
            check.that(len(set(map(str, values))) == len(values), f"{where}.quality[{j}].arguments.validValues",
                       "has duplicates")  # fmt: skip
            allowed = tuple(str(v) for v in values)
    return Column(name, kind, bool(prop.get("required", False)), tuple(ranges), allowed, physical)


def _custom(check: _Checker, items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    check.that(isinstance(items, list), where, "must be a list of {property, value}")
    out = {}
    for i, item in enumerate(items):
        check.that(isinstance(item, dict) and "property" in item and "value" in item, f"{where}[{i}]",
                   "must have property and value")  # fmt: skip
        out[item["property"]] = item["value"]
    return out


def _raw_server(check: _Checker, servers: Any) -> dict[str, Any]:
    """The input comes from the server named `raw`: ODCS `format`, `path` (type local) or `location` (type s3);
    delimiter, header and extraColumns as its customProperties."""
    check.that(isinstance(servers, list), "servers", "must list a server named raw (the input files)")
    raw = next((s for s in servers if isinstance(s, dict) and s.get("server") == "raw"), None)
    check.that(raw is not None, "servers", "must list a server named raw (the input files)")
    kind = raw.get("type", "local")
    check.that(kind in SERVER_TYPES, "servers[raw].type", f"must be one of {', '.join(SERVER_TYPES)}, got {kind!r}")
    field = "path" if kind == "local" else "location"
    location = raw.get(field)
    check.that(location is None or (isinstance(location, str) and location.strip()), f"servers[raw].{field}",
               f"must be a path or URI, got {location!r}")  # fmt: skip
    if kind == "s3":
        check.that(str(location).startswith(("s3://", "s3a://")), "servers[raw].location",
                   f"must be an s3:// URI, got {location!r}")  # fmt: skip
    fmt = raw.get("format")
    check.that(fmt in FORMATS, "servers[raw].format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    custom = _custom(check, raw.get("customProperties"), "servers[raw].customProperties")
    delimiter = custom.get("delimiter", ",")
    check.that(isinstance(delimiter, str) and len(delimiter) == 1 and delimiter not in "\n\r\"",
               "servers[raw].customProperties.delimiter", f"must be one character, got {delimiter!r}")  # fmt: skip
    header = custom.get("header", False)
    check.that(isinstance(header, bool), "servers[raw].customProperties.header", "must be true or false")
    extra = custom.get("extraColumns", "ignore")
    check.that(extra in EXTRA_COLUMNS, "servers[raw].customProperties.extraColumns",
               f"must be one of {', '.join(EXTRA_COLUMNS)}, got {extra!r}")  # fmt: skip
    return {"format": fmt, "delimiter": delimiter, "header": header, "extra_columns": extra, "type": kind,
            "location": location}  # fmt: skip
