"""The search as data: `ml_platform/search.yaml` (space, metric, budget, scheduler, algorithm), validated on load.

A bad file ends in one line naming the key (`search.yaml: scheduler.grace_period must be an integer >= 1 (got 0)`),
before Ray starts. The validated config (after overrides) has a short content hash that every trial run and
model version carries as lineage, so "which search produced this model" has an exact answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from platform_core import settings
from platform_core.errors import ConfigError

METRICS = ("valid_mlogloss", "valid_accuracy")
ALGORITHMS = ("optuna", "random")
SCHEDULERS = ("asha", "fifo")
SPACE_TYPES = ("randint", "uniform", "loguniform", "choice")
TOP_KEYS = {"metric", "budget", "seed", "algorithm", "scheduler", "space"}
# Set by the platform itself; a search may not override them (they define the task, not the model).
RESERVED_PARAMS = {"objective", "num_class", "eval_metric", "nthread", "seed"}


@dataclass(frozen=True)
class SearchConfig:
    metric: str
    mode: str
    samples: int
    max_rounds: int
    early_stopping_rounds: int
    seed: int
    algorithm: str
    scheduler: str
    grace_period: int
    reduction_factor: int
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "source"}

    @property
    def hash(self) -> str:
        """Content hash of what decides the search's outcome (not where the file was)."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_overrides(self, samples: int | None = None, max_rounds: int | None = None, seed: int | None = None):
        """CLI flags win over settings (env vars), which win over the file."""
        samples = samples or settings.TUNE_SAMPLES.get() or self.samples
        max_rounds = max_rounds or settings.TUNE_MAX_ROUNDS.get() or self.max_rounds
        seed = seed if seed is not None else settings.SEED.get()
        changed = dataclasses.replace(
            self, samples=samples, max_rounds=max_rounds, seed=self.seed if seed is None else seed
        )
        _check(changed.samples >= 1, self.source, "budget.samples", "must be >= 1", changed.samples)
        _check(changed.max_rounds >= 1, self.source, "budget.max_rounds", "must be >= 1", changed.max_rounds)
        return changed

    def tune_space(self) -> dict[str, Any]:
        """The space as Ray Tune sampling objects (imported here: only the driver needs them)."""
        from ray import tune

        out = {}
        for name, spec in self.space.items():
            kind = spec["type"]
            if kind == "choice":
                out[name] = tune.choice(spec["values"])
            else:
                out[name] = getattr(tune, kind)(spec["low"], spec["high"])
        return out


def _check(ok: bool, source: str, key: str, rule: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{source}: {key} {rule} (got {got!r})", f"fix {key} in {source}")


def _int(raw: dict, key: str, path: str, source: str, minimum: int, default: Any = ...) -> int:
    value = raw.get(key, default)
    _check(value is not ..., source, path, "is required", None)
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, source, path,
           f"must be an integer >= {minimum}", value)  # fmt: skip
    return value


def _section(raw: dict, key: str, source: str, allowed: set[str]) -> dict:
    value = raw.get(key)
    _check(isinstance(value, dict), source, key, "must be a mapping", value)
    for sub in value:
        _check(sub in allowed, source, f"{key}.{sub}", f"is not a known key (known: {', '.join(sorted(allowed))})", sub)
    return value


def _space(raw: Any, source: str) -> dict[str, dict[str, Any]]:
    _check(isinstance(raw, dict) and raw, source, "space", "must be a non-empty mapping of parameter -> spec", raw)
    space = {}
    for name, spec in raw.items():
        key = f"space.{name}"
        _check(name not in RESERVED_PARAMS, source, key, "is set by the platform and cannot be searched", name)
        _check(isinstance(spec, dict), source, key, "must be a mapping with `type`", spec)
        kind = spec.get("type")
        _check(kind in SPACE_TYPES, source, f"{key}.type", f"must be one of {', '.join(SPACE_TYPES)}", kind)
        if kind == "choice":
            _check(set(spec) == {"type", "values"}, source, key, "takes exactly `type` and `values`", sorted(spec))
            _check(isinstance(spec["values"], list) and spec["values"], source, f"{key}.values",
                   "must be a non-empty list", spec["values"])  # fmt: skip
        else:
            _check(set(spec) == {"type", "low", "high"}, source, key, "takes exactly `type`, `low`, `high`",
                   sorted(spec))  # fmt: skip
            low, high = spec["low"], spec["high"]
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            _check(numeric and low < high, source, key, "needs numbers with low < high", [low, high])
            if kind == "randint":
                _check(isinstance(low, int) and isinstance(high, int), source, key, "needs integer bounds", [low, high])
            if kind == "loguniform":
                _check(low > 0, source, f"{key}.low", "must be > 0 for loguniform", low)
        space[name] = dict(spec)
    return space


def parse(raw: Any, source: str) -> SearchConfig:
    _check(isinstance(raw, dict), source, "(top level)", "must be a mapping", type(raw).__name__)
    for key in raw:
        _check(key in TOP_KEYS, source, str(key), f"is not a known key (known: {', '.join(sorted(TOP_KEYS))})", key)
    for key in TOP_KEYS:
        _check(key in raw, source, key, "is required", None)
    metric = _section(raw, "metric", source, {"name", "mode"})
    _check(metric.get("name") in METRICS, source, "metric.name", f"must be one of {', '.join(METRICS)}",
           metric.get("name"))  # fmt: skip
    _check(metric.get("mode") in ("min", "max"), source, "metric.mode", "must be min or max", metric.get("mode"))
    budget = _section(raw, "budget", source, {"samples", "max_rounds", "early_stopping_rounds"})
    algorithm = _section(raw, "algorithm", source, {"name"})
    _check(algorithm.get("name") in ALGORITHMS, source, "algorithm.name", f"must be one of {', '.join(ALGORITHMS)}",
           algorithm.get("name"))  # fmt: skip
    scheduler = _section(raw, "scheduler", source, {"name", "grace_period", "reduction_factor"})
    _check(scheduler.get("name") in SCHEDULERS, source, "scheduler.name", f"must be one of {', '.join(SCHEDULERS)}",
           scheduler.get("name"))  # fmt: skip
    seed = raw["seed"]
    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, source, "seed",
           "must be an integer >= 0", seed)  # fmt: skip
    return SearchConfig(
        metric=metric["name"],
        mode=metric["mode"],
        samples=_int(budget, "samples", "budget.samples", source, 1),
        max_rounds=_int(budget, "max_rounds", "budget.max_rounds", source, 1),
        early_stopping_rounds=_int(budget, "early_stopping_rounds", "budget.early_stopping_rounds", source, 1, 10),
        seed=seed,
        algorithm=algorithm["name"],
        scheduler=scheduler["name"],
        grace_period=_int(scheduler, "grace_period", "scheduler.grace_period", source, 1, 5),
        reduction_factor=_int(scheduler, "reduction_factor", "scheduler.reduction_factor", source, 2, 3),
        space=_space(raw["space"], source),
        source=source,
    )


def load(path: str | Path | None = None) -> SearchConfig:
    """Read and validate a search config (default: PLATFORM_SEARCH_CONFIG = ml_platform/search.yaml)."""
    path = Path(path or settings.SEARCH_CONFIG.get())
    source = path.name
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"search config {path} does not exist", "pass an existing file to --config") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{source}: not valid YAML{line}", f"fix the syntax of {path}") from exc
    return parse(raw, source)
