"""Team-draft interleaving (online/interleave.py): hand-worked drafts, and its fairness: clicks that ignore what
was shown credit neither arm more than chance."""

from __future__ import annotations

import random

import pytest

from errors import InvalidInput
from online.interleave import outcome, team_draft


class Coins(random.Random):
    """Scripted coin flips: random() < 0.5 lets live draft first when the teams are level."""

    def __init__(self, *flips: float) -> None:
        super().__init__(0)
        self.flips = list(flips)

    def random(self) -> float:
        return self.flips.pop(0)


def test_a_hand_worked_draft():
    # Level (0-0), coin says live first: live takes a. Candidate has fewer: its best new item is b.
    # Level (1-1), coin says candidate first: a is taken, so e. Live has fewer: b is taken, so c.
    # Level (2-2), coin says live first: d. Then candidate: f.
    shown = team_draft(["a", "b", "c", "d"], ["b", "a", "e", "f"], 6, Coins(0.1, 0.9, 0.2))
    assert shown == [("a", "live"), ("b", "candidate"), ("e", "candidate"), ("c", "live"), ("d", "live"),
                     ("f", "candidate")]


def test_the_coin_decides_only_when_the_teams_are_level():
    # Candidate first (0.7): x; live then drafts y (fewer picks, no coin); level again, the coin (0.3) says live.
    shown = team_draft(["y", "z"], ["x", "w"], 3, Coins(0.7, 0.3))
    assert shown == [("x", "candidate"), ("y", "live"), ("z", "live")]


def test_items_are_the_same_when_their_key_is():
    live = [("d1", 0.9), ("d2", 0.8)]
    candidate = [("d1", 0.5), ("d3", 0.4)]
    shown = team_draft(live, candidate, 4, Coins(0.1, 0.1), key=lambda hit: hit[0])
    assert [(hit[0], arm) for hit, arm in shown] == [("d1", "live"), ("d3", "candidate"), ("d2", "live")]


def test_it_stops_at_k_or_when_both_rankings_are_spent():
    assert len(team_draft(list(range(10)), list(range(10, 20)), 5, random.Random(1))) == 5
    everything = team_draft([1, 2, 3], [3, 4], 10, random.Random(1))
    assert sorted(item for item, _ in everything) == [1, 2, 3, 4]
    assert team_draft([1, 2], [1, 2], 0, random.Random(1)) == []
    assert team_draft([], [], 3, random.Random(1)) == []


def test_a_spent_ranking_lets_the_other_fill_the_answer():
    shown = team_draft([], ["a", "b", "c"], 3, random.Random(5))
    assert shown == [("a", "candidate"), ("b", "candidate"), ("c", "candidate")]
    shown = team_draft(["a", "b", "c"], ["a"], 3, Coins(0.9, 0.9))
    assert shown == [("a", "candidate"), ("b", "live"), ("c", "live")]


@pytest.mark.parametrize("k", [-1, 2.5, True, "3"])
def test_k_must_be_a_whole_number_at_least_0(k):
    with pytest.raises(InvalidInput, match="k must be an integer >= 0"):
        team_draft([1], [2], k, random.Random(0))


def test_the_outcome_goes_to_the_arm_with_more_positive_hits():
    assert outcome(["candidate", "live", "candidate"]) == "candidate"
    assert outcome(["live"]) == "live"
    assert outcome(["live", "candidate"]) == "tie"
    assert outcome([]) == "tie"
    with pytest.raises(InvalidInput, match="arm must be 'live' or 'candidate'"):
        outcome(["control"])


@pytest.mark.parametrize("same", [False, True], ids=["different rankings", "same ranking"])
def test_clicks_blind_to_the_rankings_favour_neither_arm(same):
    """Position-biased clicks that ignore what is shown (the user clicks rank r with probability 1/(r+2)): over
    20,000 seeded answers the candidate's share of decided answers is 0.5 within 4 standard errors, and each rank
    is drafted by either arm about equally often."""
    rng, clicks = random.Random(7), random.Random(8)
    docs = [f"d{i}" for i in range(30)]
    wins = losses = 0
    candidate_at_rank = [0] * 10
    trials = 20_000
    for _ in range(trials):
        live = rng.sample(docs, 15)
        candidate = live if same else rng.sample(docs, 15)
        shown = team_draft(live, candidate, 10, rng)
        for rank, (_, arm) in enumerate(shown):
            candidate_at_rank[rank] += arm == "candidate"
        result = outcome(arm for rank, (_, arm) in enumerate(shown) if clicks.random() < 1 / (rank + 2))
        wins += result == "candidate"
        losses += result == "live"
    decided = wins + losses
    assert abs(wins / decided - 0.5) < 4 * (0.25 / decided) ** 0.5, (wins, losses)
    for rank, count in enumerate(candidate_at_rank):
        assert abs(count / trials - 0.5) < 4 * (0.25 / trials) ** 0.5, (rank, count)
