"""ml_platform/search.yaml is validated on load: a bad file ends in one line naming the key."""

import pytest

from ml_platform import search_config
from platform_core.errors import ConfigError
from tests.model.ml_support import write_config


def test_the_shipped_config_loads_and_hashes_stably():
    config = search_config.load()
    assert (config.metric, config.mode, config.algorithm, config.scheduler) == (
        "valid_mlogloss", "min", "optuna", "asha",
    )  # fmt: skip
    assert config.hash == search_config.load().hash
    assert config.with_overrides(samples=3).hash != config.hash
    assert set(config.tune_space()) == set(config.space)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"schedular": {"name": "asha"}}, "schedular"),
        ({"scheduler.grace_period": 0}, "scheduler.grace_period"),
        ({"scheduler.name": "hyperband"}, "scheduler.name"),
        ({"metric.name": "test_accuracy"}, "metric.name"),
        ({"budget.samples": "many"}, "budget.samples"),
        ({"algorithm.name": "grid"}, "algorithm.name"),
        ({"space": {"eta": {"type": "loguniform", "low": 0, "high": 1}}}, "space.eta.low"),
        ({"space": {"eta": {"type": "uniform", "low": 1, "high": 0.5}}}, "space.eta"),
        ({"space": {"nthread": {"type": "randint", "low": 1, "high": 4}}}, "space.nthread"),
        ({"space": {"eta": {"type": "normal", "low": 0, "high": 1}}}, "space.eta.type"),
        ({"seed": -1}, "seed"),
    ],
)
def test_a_bad_key_is_named_in_one_line(tmp_path, change, key):
    path = write_config(tmp_path / "bad.yaml", **change)
    with pytest.raises(ConfigError) as caught:
        search_config.load(path)
    assert f"bad.yaml: {key} " in caught.value.message and "\n" not in str(caught.value)


def test_missing_file_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        search_config.load(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("metric: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML at line"):
        search_config.load(tmp_path / "broken.yaml")


def test_cli_rejects_a_bad_config_before_touching_services(tmp_path):
    import subprocess
    import sys

    path = write_config(tmp_path / "other.yaml", **{"budget.max_rounds": 0})
    result = subprocess.run([sys.executable, "-m", "platform_cli", "tune", "--config", path],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 1
    assert "other.yaml: budget.max_rounds must be an integer >= 1 (got 0)" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
