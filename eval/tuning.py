"""Choosing stage parameters on labelled queries without fooling ourselves: a coordinate search over a small
grid, k-fold cross-validation of that search, and a paired bootstrap over queries that says whether the tuned
choice beats the current one by more than the noise.

Pure functions over per-query scores: `score(config)` returns one number per labelled query (nDCG@10, say) and is
expected to be memoised by the caller, since every fold re-reads the same configurations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

Config = dict[str, object]
Scores = Callable[[Config], np.ndarray]
# A gain smaller than this (in the mean of the metric) is a tie, and a tie keeps the preferred value: the first of
# each parameter's values, so the simpler or current setting wins unless the data says otherwise.
TIE = 0.002


def config_key(config: Mapping[str, object]) -> str:
    return json.dumps(dict(sorted(config.items())), sort_keys=True)


@dataclass(frozen=True)
class SearchSpace:
    """Each parameter with its values, the preferred first. `valid` drops combinations the pipeline refuses, and
    `relevant(config, name)` says whether a parameter matters in a configuration (late-interaction weights do not
    when the second stage is off): a parameter that does not matter keeps its value."""

    values: dict[str, tuple]
    valid: Callable[[Config], bool] = lambda c: True
    relevant: Callable[[Config, str], bool] = lambda c, name: True

    def __post_init__(self) -> None:
        for name, vals in self.values.items():
            if not vals or len(set(map(json.dumps, vals))) != len(vals):
                raise ValueError(f"search space parameter {name!r} needs distinct values, got {vals!r}")

    def start(self, base: Mapping[str, object]) -> Config:
        """`base` restricted to the searched parameters (a value outside a parameter's grid is kept as the start)."""
        return {name: base.get(name, vals[0]) for name, vals in self.values.items()}


def coordinate_search(start: Config, space: SearchSpace, objective: Callable[[Config], float],
                      passes: int = 2, tie: float = TIE) -> Config:
    """Each parameter in turn: among its values (the current one included), the best by the objective; within `tie`
    of the best, the preferred value (first in the grid), then the current one. Repeats until nothing moves."""
    current = dict(start)
    for _ in range(passes):
        moved = False
        for name, grid in space.values.items():
            if not space.relevant(current, name):
                continue
            options = list(dict.fromkeys([*grid, current[name]]))
            trials = [(v, {**current, name: v}) for v in options]
            trials = [(v, c) for v, c in trials if space.valid(c)]
            scored = [(v, objective(c)) for v, c in trials]
            best = max(s for _, s in scored)
            tied = [v for v, s in scored if s >= best - tie]
            # Within a tie: the preferred value, else the current one (no move without a gain), else the earliest.
            choice = grid[0] if grid[0] in tied else current[name] if current[name] in tied else tied[0]
            if choice != current[name]:
                current[name] = choice
                moved = True
        if not moved:
            break
    return current


@dataclass
class CrossValidation:
    folds: int
    chosen: list[Config]             # the configuration each fold's search chose on the other folds
    heldout: np.ndarray              # per query: its score under the configuration chosen without it
    final: Config                    # the search on every query: what would be adopted
    fold_of: np.ndarray              # per query: its fold


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    if not 2 <= folds <= n:
        raise ValueError(f"folds={folds} is out of range [2, {n}] for {n} labelled queries")
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % folds
    return fold_of


def cross_validate(score: Scores, n: int, start: Config, space: SearchSpace, folds: int = 5, seed: int = 0,
                   passes: int = 2, tie: float = TIE, on_fold: Callable[[int], None] | None = None) -> CrossValidation:
    """Run the search k times, each on k-1 folds, and score what it chose on the fold it did not see."""
    fold_of = fold_assignment(n, folds, seed)
    heldout = np.zeros(n)
    chosen = []
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        cfg = coordinate_search(start, space, lambda c: float(score(c)[train].mean()), passes, tie)
        heldout[test] = score(cfg)[test]
        chosen.append(cfg)
        if on_fold:
            on_fold(f + 1)
    final = coordinate_search(start, space, lambda c: float(score(c).mean()), passes, tie)
    return CrossValidation(folds, chosen, heldout, final, fold_of)


@dataclass(frozen=True)
class PairedTest:
    """Mean per-query gain of one system over another, with a bootstrap interval over queries."""

    mean: float
    low: float
    high: float
    level: float
    queries: int
    wins: int
    losses: int
    resamples: int = field(default=10_000)

    @property
    def better(self) -> bool:
        """The interval lies above zero: the gain is more than resampling the queries can explain."""
        return self.low > 0

    def as_dict(self) -> dict:
        return {"mean_gain": self.mean, "ci_low": self.low, "ci_high": self.high, "level": self.level,
                "queries": self.queries, "wins": self.wins, "losses": self.losses, "resamples": self.resamples}


def paired_bootstrap(ours: Sequence[float], theirs: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                     seed: int = 0) -> PairedTest:
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired scores must be two equal, non-empty lists; got {a.shape} and {b.shape}")
    if not 0.5 < level < 1:
        raise ValueError(f"confidence level={level} is out of range (0.5, 1)")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(0, resamples, 1000):  # in slices: 10,000 x 10,000 queries would not fit in memory at once
        k = min(1000, resamples - i)
        means[i:i + k] = diff[rng.integers(0, len(diff), size=(k, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedTest(float(diff.mean()), float(low), float(high), level, len(diff), int((diff > 0).sum()),
                      int((diff < 0).sum()), resamples)
