"""The promotion gate: a candidate snapshot goes live only if every gated metric, on every active query set,
is at or above its floor and has not fallen more than its tolerance below the live snapshot's value.

Pure functions over metric dicts: which snapshot, which runs and what happens next are decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from eval.metrics import metric_names

EPS = 1e-9  # a value equal to its floor, reached by another float path, still passes


@dataclass(frozen=True)
class GatePolicy:
    floors: dict[str, float] = field(default_factory=dict)     # metric -> lowest value allowed
    max_drop: dict[str, float] = field(default_factory=dict)   # metric -> largest fall allowed vs live

    def validate(self, ks: Sequence[int]) -> "GatePolicy":
        known = metric_names(ks)
        for what, table in (("floor", self.floors), ("allowed drop", self.max_drop)):
            for metric, value in table.items():
                if metric not in known:
                    raise ValueError(f"gate {what} names metric {metric!r}, which evaluation does not compute; "
                                     f"known with eval ks {list(ks)}: {', '.join(known)}")
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"gate {what} of {metric} is {value}; allowed range [0, 1]")
        return self

    @property
    def metrics(self) -> list[str]:
        return sorted(set(self.floors) | set(self.max_drop))


@dataclass(frozen=True)
class SetOutcome:
    """One active query set scored on the candidate and, when there is one, on the live snapshot."""

    name: str
    version: int
    candidate: dict[str, float]
    baseline: dict[str, float] | None


@dataclass(frozen=True)
class Judgement:
    passed: bool
    reasons: list[str]
    checks: list[dict]


def judge(policy: GatePolicy, outcomes: list[SetOutcome]) -> Judgement:
    if not outcomes:
        return Judgement(True, ["no active query set: promoted without a gate (upload one with POST /eval/query-sets)"],
                         [])
    reasons, checks = [], []
    for o in outcomes:
        label = f"{o.name} v{o.version}"
        for metric in policy.metrics:
            value = o.candidate[metric]
            check = {"query_set": o.name, "version": o.version, "metric": metric, "value": value, "passed": True}
            floor = policy.floors.get(metric)
            if floor is not None:
                check["floor"] = floor
                if value < floor - EPS:
                    check["passed"] = False
                    reasons.append(f"{label}: {metric} {value:.4f} is below the floor {floor:.4f}")
            allowed = policy.max_drop.get(metric)
            if allowed is not None and o.baseline is not None:
                before = o.baseline[metric]
                drop = before - value
                check.update(baseline=before, drop=drop, max_drop=allowed)
                if drop > allowed + EPS:
                    check["passed"] = False
                    reasons.append(f"{label}: {metric} fell {drop:.4f} ({before:.4f} -> {value:.4f}), "
                                   f"more than the allowed {allowed:.4f}")
            checks.append(check)
    return Judgement(not reasons, reasons, checks)
