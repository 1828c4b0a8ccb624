"""The tuner's pieces on hand-computed cases: the coordinate search and its tie rule, the folds, cross-validation,
and the paired bootstrap (checked against an exact enumeration on a tiny case)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eval.tuning import (SearchSpace, config_key, coordinate_search, cross_validate, fold_assignment,
                         paired_bootstrap)


def test_coordinate_search_moves_only_for_a_gain_and_prefers_the_first_value_on_a_tie():
    space = SearchSpace({"a": (1, 2, 3), "b": ("x", "y")})
    # b=y is worth +0.5; a is flat within the tie (0.001): the preferred a=1 wins over the start's a=3.
    objective = lambda c: (0.5 if c["b"] == "y" else 0.0) + 0.001 * c["a"]
    assert coordinate_search({"a": 3, "b": "x"}, space, objective, tie=0.002) == {"a": 1, "b": "y"}
    # Outside the tie, the better value wins.
    assert coordinate_search({"a": 1, "b": "x"}, space, lambda c: c["a"] * 0.1, tie=0.002) == {"a": 3, "b": "x"}
    # A current value outside the grid stays when nothing in the grid beats it.
    assert coordinate_search({"a": 9, "b": "x"}, space, lambda c: 1.0 if c["a"] == 9 else 0.0)["a"] == 9


def test_coordinate_search_skips_invalid_and_irrelevant_parameters():
    space = SearchSpace({"on": (True, False), "w": (0.0, 1.0)}, valid=lambda c: not (c["on"] and c["w"] == 0.0),
                        relevant=lambda c, name: name != "w" or c["on"])
    seen = []

    def objective(c):
        seen.append(dict(c))
        return 1.0 if c["on"] and c["w"] == 1.0 else 0.0

    assert coordinate_search({"on": True, "w": 1.0}, space, objective) == {"on": True, "w": 1.0}
    assert {"on": True, "w": 0.0} not in seen  # never tried: the pipeline would refuse it
    assert coordinate_search({"on": False, "w": 0.0}, SearchSpace({"on": (False,), "w": (0.0, 1.0)},
                             relevant=lambda c, name: name != "w" or c["on"]), objective) == {"on": False, "w": 0.0}
    with pytest.raises(ValueError, match="distinct values"):
        SearchSpace({"a": (1, 1)})


def test_folds_are_balanced_deterministic_and_checked():
    f = fold_assignment(23, 5, seed=1)
    assert sorted(np.bincount(f)) == [4, 4, 5, 5, 5]
    assert (f == fold_assignment(23, 5, seed=1)).all() and not (f == fold_assignment(23, 5, seed=2)).all()
    with pytest.raises(ValueError, match=r"folds=1 is out of range \[2, 23\]"):
        fold_assignment(23, 1, 0)


def test_cross_validation_scores_each_fold_by_what_the_other_folds_chose():
    n = 40
    rng = np.random.default_rng(0)
    good = rng.uniform(0.6, 1.0, n)
    table = {config_key({"k": "good"}): good, config_key({"k": "bad"}): good - 0.3}
    calls = []

    def score(c):
        calls.append(c["k"])
        return table[config_key(c)]

    cv = cross_validate(score, n, {"k": "bad"}, SearchSpace({"k": ("bad", "good")}), folds=4, seed=3)
    assert cv.chosen == [{"k": "good"}] * 4 and cv.final == {"k": "good"}
    np.testing.assert_allclose(cv.heldout, good)  # every query scored under a choice made without it
    assert sorted(np.bincount(cv.fold_of)) == [10, 10, 10, 10]


def test_paired_bootstrap_by_hand_and_against_exact_enumeration():
    same = paired_bootstrap([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert (same.mean, same.low, same.high, same.better) == (0.0, 0.0, 0.0, False)
    lift = paired_bootstrap([0.6, 0.8, 1.0], [0.5, 0.7, 0.9])
    assert lift.mean == pytest.approx(0.1) and lift.low == pytest.approx(0.1) and lift.better and lift.wins == 3
    # Differences (1, 0, 0, -1)/10: enumerate all 4^4 resamples for the exact distribution of the mean.
    diff = np.array([0.1, 0.0, 0.0, -0.1])
    exact = np.array([np.mean(s) for s in itertools.product(diff, repeat=4)])
    t = paired_bootstrap(diff, np.zeros(4), level=0.8, resamples=200_000, seed=5)
    assert t.low == pytest.approx(np.quantile(exact, 0.1), abs=0.006)
    assert t.high == pytest.approx(np.quantile(exact, 0.9), abs=0.006)
    assert not t.better and (t.wins, t.losses) == (1, 1)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_bootstrap([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="level=1.2"):
        paired_bootstrap([1.0], [1.0], level=1.2)
