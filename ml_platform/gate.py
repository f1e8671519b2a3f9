"""Gate stage: the search's best model (the challenger) against the `champion`, on the same rows, by the rules
in ml_platform/gate.yaml. A promotion can only make production better.

- Both models are scored on the test split of the dataset version the challenger was trained on (a champion
  trained on an older version is scored on the same new rows).
- The challenger is registered (or its existing version reused) and every decision is recorded: tags on the
  version (`gate`, both models' metrics, each rule's result) and a JSON report under <state>/reports/.
- Pass: alias `challenger` moves to it. `promote` (canary flow, or `gate --promote`) then moves `champion` to it
  and keeps the old champion as `previous`. Fail: no alias moves, the version is tagged `gate=rejected`, and
  `GateReport.raise_if_rejected` ends the command with exit 1 and one line naming the rule and both numbers.
- A challenger that *is* the champion (same run or byte-identical booster) is `unchanged`: nothing moves.
- A champion that cannot be compared (trained on another dataset, other features or classes: one model name
  shared by two datasets) is never scored: the challenger's version is tagged `gate=refused` and `GateRefused`
  names both sides in one line.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml_platform import registry, tracking
from ml_platform.dataset import load_splits
from ml_platform.trial import evaluate
from platform_core import settings
from platform_core.bundle import CHALLENGER, CHAMPION
from platform_core.errors import ConfigError, PlatformError

LOWER_IS_BETTER = {"mlogloss": True, "accuracy": False}


class GateRejected(PlatformError):
    """The challenger failed a gate rule (exit 1, no alias moved)."""


class GateRefused(PlatformError):
    """The champion was trained on another dataset or feature set: the two cannot be compared (no alias moved)."""


@dataclass(frozen=True)
class Rules:
    primary: str
    min_relative_improvement: float
    secondary: dict[str, float]  # metric -> max absolute worsening
    floors: dict[str, dict[str, float]]  # metric -> {min|max: bound}
    source: str = ""
    sha256: str = ""


@dataclass
class RuleResult:
    rule: str
    passed: bool
    detail: str


@dataclass
class Decision:
    outcome: str  # passed | rejected | unchanged
    results: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> RuleResult | None:
        return next((r for r in self.results if not r.passed), None)


def _bad(source: str, key: str, rule: str, got: Any) -> ConfigError:
    return ConfigError(f"{source}: {key} {rule} (got {got!r})", f"fix {key} in {source}")


def _number(value: Any, source: str, key: str, minimum: float = 0.0) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
        raise _bad(source, key, f"must be a number >= {minimum}", value)
    return float(value)


def _metric(value: Any, source: str, key: str) -> str:
    if value not in LOWER_IS_BETTER:
        raise _bad(source, key, f"must be one of {', '.join(LOWER_IS_BETTER)}", value)
    return value


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate the gate rules (default PLATFORM_GATE_CONFIG = ml_platform/gate.yaml)."""
    path = Path(path or settings.GATE_CONFIG.get())
    source = path.name
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
    except FileNotFoundError as exc:
        raise ConfigError(f"gate rules {path} do not exist", "pass an existing file to --rules") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML", f"fix the syntax of {path}") from exc
    if not isinstance(raw, dict):
        raise _bad(source, "(top level)", "must be a mapping", raw)
    for key in raw:
        if key not in ("primary", "secondary", "floors"):
            raise _bad(source, str(key), "is not a known key (known: floors, primary, secondary)", key)
    primary = raw.get("primary")
    if not isinstance(primary, dict) or set(primary) != {"metric", "min_relative_improvement"}:
        raise _bad(source, "primary", "needs exactly `metric` and `min_relative_improvement`", primary)
    secondary = {}
    for i, item in enumerate(raw.get("secondary") or []):
        if not isinstance(item, dict) or set(item) != {"metric", "max_drop"}:
            raise _bad(source, f"secondary[{i}]", "needs exactly `metric` and `max_drop`", item)
        secondary[_metric(item["metric"], source, f"secondary[{i}].metric")] = _number(
            item["max_drop"], source, f"secondary[{i}].max_drop"
        )
    floors = {}
    for metric, bound in (raw.get("floors") or {}).items():
        _metric(metric, source, f"floors.{metric}")
        if not isinstance(bound, dict) or not bound or set(bound) - {"min", "max"}:
            raise _bad(source, f"floors.{metric}", "must be a mapping with `min` and/or `max`", bound)
        floors[metric] = {k: _number(v, source, f"floors.{metric}.{k}") for k, v in bound.items()}
    return Rules(
        primary=_metric(primary["metric"], source, "primary.metric"),
        min_relative_improvement=_number(
            primary["min_relative_improvement"], source, "primary.min_relative_improvement"
        ),  # fmt: skip
        secondary=secondary,
        floors=floors,
        source=str(path),
        sha256=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def decide(rules: Rules, challenger: dict[str, float], champion: dict[str, float] | None) -> Decision:
    """The rules applied to two sets of test metrics (pure: no registry, no I/O)."""
    results = []
    if champion is None:
        for metric, bound in rules.floors.items():
            value = challenger[metric]
            if "min" in bound:
                results.append(RuleResult(f"floor {metric} >= {bound['min']:g}", value >= bound["min"],
                                          f"challenger {value:.4f}, floor {bound['min']:g} (first)"))  # fmt: skip
            if "max" in bound:
                results.append(RuleResult(f"floor {metric} <= {bound['max']:g}", value <= bound["max"],
                                          f"challenger {value:.4f}, ceiling {bound['max']:g} (first)"))  # fmt: skip
    else:
        metric, need = rules.primary, rules.min_relative_improvement
        new, old = challenger[metric], champion[metric]
        gain = (old - new) if LOWER_IS_BETTER[metric] else (new - old)
        relative = gain / abs(old) if old else (float("inf") if gain > 0 else 0.0)
        results.append(RuleResult(
            f"{metric} must improve by >= {need:.1%}", relative >= need,
            f"challenger {new:.4f} vs champion {old:.4f} ({relative:+.2%})",
        ))  # fmt: skip
        for metric, max_drop in rules.secondary.items():
            new, old = challenger[metric], champion[metric]
            worse = (new - old) if LOWER_IS_BETTER[metric] else (old - new)
            results.append(RuleResult(
                f"{metric} may not worsen by more than {max_drop:g}", worse <= max_drop + 1e-12,
                f"challenger {new:.4f} vs champion {old:.4f} ({-worse:+.4f})",
            ))  # fmt: skip
    return Decision("passed" if all(r.passed for r in results) else "rejected", results)


@dataclass
class GateReport:
    model_name: str
    outcome: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    rules: list[dict[str, Any]]
    dataset: dict[str, Any]
    rules_file: str
    rules_sha256: str
    promoted: bool = False
    previous: str | None = None  # the version that became @previous on promotion
    created_at: str = ""
    report_path: str = ""

    @property
    def failed_rule(self) -> dict[str, Any] | None:
        return next((r for r in self.rules if not r["passed"]), None)

    def raise_if_rejected(self) -> None:
        if self.outcome == "rejected":
            rule = self.failed_rule
            raise GateRejected(
                f"gate rejected {self.model_name} v{self.challenger['version']}: {rule['rule']}: {rule['detail']}",
                f"no alias moved; report: {self.report_path}",
            )


def _booster(model_uri: str):
    import mlflow.xgboost

    return mlflow.xgboost.load_model(model_uri)


def _lineage(run_id: str) -> dict[str, str]:
    run = registry.client().get_run(run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k in tracking.LINEAGE_KEYS}
    if tracking.DATASET_VERSION not in lineage:
        raise PlatformError(f"run {run_id} carries no dataset lineage", "gate a trial run of `task tune`")
    return lineage


@dataclass
class _Scored:
    """Both models' test metrics on the same rows (the challenger's dataset version)."""

    splits: Any
    scores: dict[str, dict[str, float]]
    champion: Any  # the @champion ModelVersion, or None
    same_model: bool  # the challenger is the champion's booster
    foreign: str | None = None  # why the champion cannot be scored on these rows (then it was not)


def _num_class(booster) -> int:
    return int(json.loads(booster.save_config())["learner"]["learner_model_param"]["num_class"])


def _foreign(champion, champion_model, challenger_model, dataset: str, splits) -> str | None:
    """Why @champion is not comparable with the challenger on the challenger's rows, or None."""
    theirs = (champion.tags or {}).get(tracking.DATASET)
    if theirs and theirs != dataset:
        return f"@champion v{champion.version} was trained on dataset {theirs!r}, the challenger on {dataset!r}"
    names, n = champion_model.feature_names, champion_model.num_features()
    if n != len(splits.feature_names) or (names and list(names) != list(splits.feature_names)):
        return (f"@champion v{champion.version} takes {n} features, the challenger's dataset {dataset!r} has "
                f"{len(splits.feature_names)} other ones")  # fmt: skip
    if _num_class(champion_model) != _num_class(challenger_model):
        return f"@champion v{champion.version} predicts other classes than the challenger ({dataset!r})"
    return None


def _score(model_name: str, run_id: str, challenger_uri: str, lineage: dict[str, str]) -> _Scored:
    splits = load_splits(dataset=lineage[tracking.DATASET], version=int(lineage[tracking.DATASET_VERSION]))
    challenger_model = _booster(challenger_uri)
    scores = {"challenger": evaluate(challenger_model, splits.x_test, splits.y_test)}
    champion, same = registry.version_by_alias(model_name, CHAMPION), False
    if champion is not None:
        champion_model = _booster(f"models:/{model_name}/{champion.version}")
        foreign = _foreign(champion, champion_model, challenger_model, lineage[tracking.DATASET], splits)
        if foreign:
            return _Scored(splits, scores, champion, False, foreign)
        scores["champion"] = evaluate(champion_model, splits.x_test, splits.y_test)
        same = champion.run_id == run_id or champion_model.save_raw("ubj") == challenger_model.save_raw("ubj")
    return _Scored(splits, scores, champion, same)


def _refused(model_name: str, challenger: str, foreign: str) -> GateRefused:
    return GateRefused(
        f"gate refused {model_name} {challenger}: {foreign}",
        "one registered model per dataset: unset PLATFORM_MODEL_NAME (default <dataset>-xgboost) or give this "
        "dataset its own",
    )


def preview(run_id: str, model_name: str | None = None, rules: Rules | str | Path | None = None) -> dict[str, Any]:
    """What the gate would decide for `run_id`, with no side effects (no registration, tags, aliases or report):
    the notebook's comparison with the champion."""
    model_name = model_name or settings.MODEL_NAME.get()
    rules = rules if isinstance(rules, Rules) else load_rules(rules)
    scored = _score(model_name, run_id, registry.model_uri_of_run(run_id), _lineage(run_id))
    if scored.foreign:
        raise _refused(model_name, f"(run {run_id})", scored.foreign)
    decision = decide(rules, scored.scores["challenger"], scored.scores.get("champion"))
    champion = scored.champion
    return {"scores": scored.scores, "outcome": decision.outcome, "rules": [asdict(r) for r in decision.results],
            "champion_version": str(champion.version) if champion is not None else None}  # fmt: skip


def run_gate(model_name: str | None = None, run_id: str | None = None, rules: Rules | str | Path | None = None,
             promote_on_pass: bool = False) -> GateReport:  # fmt: skip
    """The gate stage: challenger (`run_id`, default: the newest search's best trial) vs @champion. Returns the
    recorded report; call `raise_if_rejected()` to turn a rejection into the one-line error."""
    model_name = model_name or settings.MODEL_NAME.get()
    rules = rules if isinstance(rules, Rules) else load_rules(rules)
    client = registry.client()
    run_id = run_id or registry.latest_best_run_id(settings.EXPERIMENT.get())
    lineage = _lineage(run_id)
    version = registry.find_or_register(model_name, run_id, lineage)
    scored = _score(model_name, run_id, f"models:/{model_name}/{version.version}", lineage)
    splits, scores, champion = scored.splits, scored.scores, scored.champion
    if scored.foreign:
        client.set_model_version_tag(model_name, version.version, "gate", "refused")
        client.set_model_version_tag(model_name, version.version, "gate.refused", scored.foreign)
        raise _refused(model_name, f"v{version.version}", scored.foreign)
    champion_info = None
    if champion is not None:
        champion_info = {"version": str(champion.version), "run_id": champion.run_id, "metrics": scores["champion"]}
    if scored.same_model:
        decision = Decision("unchanged", [RuleResult("same model as the champion", True,
                                                     f"v{version.version} already is @champion")])  # fmt: skip
    else:
        decision = decide(rules, scores["challenger"], scores.get("champion"))

    report = GateReport(
        model_name=model_name, outcome=decision.outcome,
        challenger={"version": str(version.version), "run_id": run_id, "metrics": scores["challenger"], **lineage},
        champion=champion_info, rules=[asdict(r) for r in decision.results],
        dataset={"name": splits.dataset, "version": splits.version, "content_hash": splits.content_hash,
                 "split": "test", "rows": len(splits.y_test)},
        rules_file=rules.source, rules_sha256=rules.sha256,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    reports = settings.state_dir() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"gate-{time.strftime('%Y%m%d-%H%M%S')}-{model_name}-v{version.version}.json"
    report.report_path = str(path)

    tags = {"gate": decision.outcome, "gate.report": path.name, "gate.rules_sha256": rules.sha256,
            "gate.test_rows": str(len(splits.y_test))}  # fmt: skip
    for who, metrics in scores.items():
        tags |= {f"gate.{who}.{k}": f"{v:.6f}" for k, v in metrics.items()}
    if champion is not None:
        tags["gate.champion.version"] = str(champion.version)
    tags |= {f"gate.rule.{i}": f"{'pass' if r.passed else 'FAIL'}: {r.rule}" for i, r in enumerate(decision.results)}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    if decision.outcome == "passed":
        client.set_registered_model_alias(model_name, CHALLENGER, version.version)
        if promote_on_pass:
            _, report.previous = registry.promote(model_name)
            report.promoted = True
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
