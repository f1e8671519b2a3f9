"""Contracts: the shipped iris contract, ODCS lint by an independent tool, and bad contracts rejected in one line
naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data_platform.contract import cluster_raw_path, load_contract, local_raw_path, parse_contract
from data_platform.generate import contract_doc
from platform_core import settings
from platform_core.errors import ConfigError

IRIS = settings.REPO_ROOT / "contracts" / "iris.yaml"


def _iris() -> dict:
    return yaml.safe_load(IRIS.read_text())


def test_iris_contract_is_the_default_and_names_come_from_the_file():
    contract = load_contract()
    doc = _iris()
    props = doc["schema"][0]["properties"]
    assert contract.dataset == settings.DATASET.get() == doc["id"]
    assert contract.features == [p["name"] for p in props if p["logicalType"] == "number"]
    assert contract.classes == tuple(props[-1]["quality"][0]["arguments"]["validValues"])
    assert contract.key == () and contract.key_columns == contract.names  # no natural key: the whole record
    assert (contract.input_format, contract.delimiter, contract.header) == ("csv", ",", False)


@pytest.mark.parametrize("doc", [_iris(), contract_doc("synth", 20, 2, ";", True, 0.05)], ids=["iris", "generated"])
def test_contracts_pass_datacontract_lint(tmp_path, doc):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    lint = subprocess.run([str(Path(sys.executable).with_name("datacontract")), "lint", str(path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _broken(change) -> dict:
    doc = _iris()
    change(doc)
    return doc


def _prop(doc, name):
    return next(p for p in doc["schema"][0]["properties"] if p["name"] == name)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: _prop(d, "sepal_width").update(logicalType="float"), "properties[sepal_width].logicalType"),
        (lambda d: d["customProperties"][0].update(value="kind"), "customProperties.label"),
        (lambda d: d["customProperties"][1].update(value=3), "customProperties.maxQuarantineRate"),
        (lambda d: _prop(d, "species").pop("quality"), "properties[species].quality"),
        (lambda d: _prop(d, "petal_width").update(name="split"), "properties[split].name"),
        (lambda d: _prop(d, "petal_width")["logicalTypeOptions"].update(maximum="big"), "logicalTypeOptions.maximum"),
        (lambda d: d["servers"][0].update(format="xlsx"), "servers[raw].format"),
        (lambda d: d.update(apiVersion="v2.2.2"), "apiVersion"),
        (lambda d: d["schema"][0]["properties"].append(dict(_prop(d, "sepal_length"))), "duplicate column names"),
    ],
    ids=[
        "unknown type",
        "label not a column",
        "rate > 1",
        "no classes",
        "reserved name",
        "range not a number",
        "unknown format",
        "not ODCS v3",
        "duplicate column",
    ],  # fmt: skip
)
def test_bad_contract_is_rejected_in_one_line_naming_the_key(change, key):
    with pytest.raises(ConfigError) as err:
        parse_contract(_broken(change), "bad.yaml")
    assert key in str(err.value) and "\n" not in str(err.value)


def test_malformed_yaml_and_missing_contract(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nschema: [\n  - name: {\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_contract(bad)
    with pytest.raises(ConfigError, match="no contract"):
        load_contract("no_such_dataset")


def test_cli_shows_a_bad_contract_as_one_line(tmp_path):
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(_broken(lambda d: d.update(kind="Table"))))
    env = {**os.environ, "PLATFORM_CONTRACTS_DIR": str(tmp_path), "COLUMNS": "300"}  # no rich wrapping
    run = subprocess.run([str(Path(sys.executable).with_name("platform")), "etl"], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert "kind must be DataContract" in run.stderr and "Traceback" not in run.stderr + run.stdout


def test_physical_names_map_source_columns_and_stay_out_of_the_curated_names():
    doc = _iris()
    _prop(doc, "petal_width")["physicalName"] = "petal width (cm)"
    doc["servers"][0]["customProperties"].append({"property": "extraColumns", "value": "refuse"})
    contract = parse_contract(doc, "c.yaml")
    assert contract.names[3] == "petal_width" and contract.sources[3] == "petal width (cm)"
    assert contract.extra_columns == "refuse"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: _prop(d, "petal_width").update(physicalName=3), "properties[petal_width].physicalName"),
        (lambda d: _prop(d, "petal_width").update(physicalName="a,b"), "contain the delimiter"),
        (lambda d: _prop(d, "petal_width").update(physicalName="sepal_length"), "duplicate physical"),
        (lambda d: d["servers"][0]["customProperties"].append({"property": "extraColumns", "value": "drop"}),
         "customProperties.extraColumns"),
        (lambda d: d["servers"][0].update(type="s3", location="raw/iris.data"), "servers[raw].location"),
        (lambda d: d["servers"][0].update(type="ftp"), "servers[raw].type"),
    ],
    ids=["physicalName not a string", "delimiter in name", "physical name twice", "extraColumns", "s3 not a URI",
         "server type"],
)  # fmt: skip
def test_bad_mapping_or_server_is_rejected_naming_the_key(change, key):
    with pytest.raises(ConfigError) as err:
        parse_contract(_broken(change), "bad.yaml")
    assert key in str(err.value) and "\n" not in str(err.value)


def test_raw_path_comes_from_the_contract_unless_a_setting_overrides_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    for name in ("PLATFORM_RAW_PATH", "PLATFORM_K8S_RAW_PATH"):
        monkeypatch.delenv(name, raising=False)
    iris = load_contract()
    assert local_raw_path(iris) == str(tmp_path / "raw" / "iris.data")  # servers[raw].path, under the state dir
    assert cluster_raw_path(iris, "bkt") == "s3a://bkt/raw/iris.data"  # the same layout in the bucket
    s3 = _iris()
    s3["servers"][0] = {**s3["servers"][0], "type": "s3", "location": "s3://data/exports/iris/"}
    s3.pop("path", None)
    on_s3 = parse_contract(s3, "c.yaml")
    assert cluster_raw_path(on_s3, "bkt") == "s3a://data/exports/iris/"
    with pytest.raises(ConfigError, match="set PLATFORM_RAW_PATH"):
        local_raw_path(on_s3)
    monkeypatch.setenv("PLATFORM_RAW_PATH", "/data/iris.csv")
    monkeypatch.setenv("PLATFORM_K8S_RAW_PATH", "s3a://other/iris.csv")
    assert (local_raw_path(on_s3), cluster_raw_path(iris, "bkt")) == ("/data/iris.csv", "s3a://other/iris.csv")
