"""The promotion gate's judgement on hand-made metric values."""

from __future__ import annotations

import pytest

from eval.gate import GatePolicy, SetOutcome, judge

POLICY = GatePolicy(floors={"recall@10": 0.8}, max_drop={"recall@10": 0.02, "ndcg@10": 0.02})


def outcome(cand, base=None, name="kb", version=1):
    return SetOutcome(name, version, cand, base)


def test_passes_at_the_floor_and_within_the_tolerance():
    j = judge(POLICY, [outcome({"recall@10": 0.8, "ndcg@10": 0.70}, {"recall@10": 0.82, "ndcg@10": 0.72})])
    assert j.passed and j.reasons == []
    by_metric = {c["metric"]: c for c in j.checks}
    assert by_metric["recall@10"]["floor"] == 0.8 and by_metric["recall@10"]["drop"] == pytest.approx(0.02)
    assert by_metric["ndcg@10"]["baseline"] == 0.72 and "floor" not in by_metric["ndcg@10"]


def test_below_the_floor_is_held_with_the_value_and_the_floor():
    j = judge(POLICY, [outcome({"recall@10": 0.7, "ndcg@10": 0.6})])
    assert not j.passed
    assert j.reasons == ["kb v1: recall@10 0.7000 is below the floor 0.8000"]


def test_a_drop_beyond_the_tolerance_is_held_even_above_the_floor():
    j = judge(POLICY, [outcome({"recall@10": 0.95, "ndcg@10": 0.60}, {"recall@10": 0.96, "ndcg@10": 0.65})])
    assert not j.passed
    assert j.reasons == ["kb v1: ndcg@10 fell 0.0500 (0.6500 -> 0.6000), more than the allowed 0.0200"]


def test_first_snapshot_meets_floors_only_and_every_set_counts():
    ok = outcome({"recall@10": 0.9, "ndcg@10": 0.1})  # no live snapshot: no drop to measure
    bad = outcome({"recall@10": 0.5, "ndcg@10": 0.5}, name="faq", version=3)
    j = judge(POLICY, [ok, bad])
    assert not j.passed and len(j.reasons) == 1 and j.reasons[0].startswith("faq v3: recall@10")
    assert judge(POLICY, [ok]).passed


def test_no_query_set_promotes_and_says_so():
    j = judge(POLICY, [])
    assert j.passed and "no active query set" in j.reasons[0]


def test_policy_names_only_metrics_that_are_computed():
    with pytest.raises(ValueError, match=r"recall@7.*known with eval ks \[1, 10\]"):
        GatePolicy(floors={"recall@7": 0.5}).validate([1, 10])
    with pytest.raises(ValueError, match=r"allowed drop of ndcg@10 is 1.5; allowed range \[0, 1\]"):
        GatePolicy(max_drop={"ndcg@10": 1.5}).validate([10])
    assert GatePolicy(floors={"mrr@10": 0.3}).validate([5]).metrics == ["mrr@10"]
