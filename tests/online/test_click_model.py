"""The simulated chat user (online/click_model.py): its position bias, its preference for relevant hits, and its
seeding."""

from __future__ import annotations

import pytest

from errors import InvalidInput
from online.click_model import ClickModel, Feedback


def signal_rates(model: ClickModel, shown: list[str], qrels: dict[str, int], signal: str, n: int) -> list[float]:
    counts = [0] * len(shown)
    for _ in range(n):
        for rank, got in model.respond(shown, qrels).signals:
            counts[rank] += got == signal
    return [c / n for c in counts]


def test_clicks_fall_with_rank_as_the_examination_probability_does():
    """Every hit equally relevant and no click ends the reading: the click rate at rank r is the click probability
    times (1 + r) ** -eta, within 4 standard errors over 20,000 seeded answers."""
    model = ClickModel(seed=1, eta=1.0, satisfied=0.0)
    shown = [f"d{i}" for i in range(6)]
    rates = signal_rates(model, shown, {d: 1 for d in shown}, "clicked", 20_000)
    for rank, rate in enumerate(rates):
        expected = model.click[1] * model.examined(rank)
        assert abs(rate - expected) < 4 * (expected * (1 - expected) / 20_000) ** 0.5, (rank, rate, expected)
    assert rates == sorted(rates, reverse=True)


def test_a_satisfying_click_ends_the_reading():
    """With every relevant click satisfying, only the first click in a run of relevant hits is ever followed by
    nothing below it: a second click never comes after a click on a relevant hit."""
    model = ClickModel(seed=2, satisfied=1.0)
    shown = ["a", "b", "c"]
    for _ in range(2000):
        clicked = [rank for rank, signal in model.respond(shown, {"a": 1, "b": 1, "c": 1}).signals
                   if signal == "clicked"]
        assert len(clicked) <= 1


def test_relevant_hits_are_clicked_and_cited_far_more_often():
    model = ClickModel(seed=3)
    shown = ["x", "r", "y"]
    for signal in ("clicked", "cited"):
        rates = signal_rates(model, shown, {"r": 1}, signal, 5000)
        assert rates[1] > 3 * rates[0] and rates[1] > 3 * rates[2], (signal, rates)


def test_ratings_follow_what_was_engaged_with():
    model = ClickModel(seed=4)
    nothing_relevant = [model.respond(["a", "b"], {"z": 1}) for _ in range(2000)]
    assert not any(f.helpful for f in nothing_relevant)
    assert any(f.helpful is False for f in nothing_relevant)
    all_relevant = [model.respond(["a", "b"], {"a": 1, "b": 1}) for _ in range(2000)]
    assert sum(f.helpful is True for f in all_relevant) > 1000
    # Rated not helpful only when the user and the model left every (relevant) hit alone.
    assert all(not f.signals for f in all_relevant if f.helpful is False)
    assert all(f.signals for f in all_relevant if f.helpful is True)


def test_the_same_seed_gives_the_same_users():
    shown, qrels = [f"d{i}" for i in range(10)], {"d1": 1, "d4": 2}
    first, second = ClickModel(seed=9), ClickModel(seed=9)
    assert [first.respond(shown, qrels) for _ in range(50)] == [second.respond(shown, qrels) for _ in range(50)]
    assert [ClickModel(seed=10).respond(shown, qrels) for _ in range(50)] != \
        [ClickModel(seed=9).respond(shown, qrels) for _ in range(50)]


def test_positive_signals():
    assert Feedback(((2, "cited"), (0, "clicked"), (2, "clicked")), None).positive_ranks() == [0, 2]
    assert Feedback((), True).positive() and not Feedback((), False).positive() and not Feedback((), None).positive()
    assert Feedback(((1, "cited"),), None).positive() and not Feedback(((1, "cited"),), False).positive()
    assert Feedback((), False).reported() and Feedback(((0, "clicked"),), None).reported()
    assert not Feedback((), None).reported()


@pytest.mark.parametrize(("field", "value"), [("eta", -1.0), ("click", (0.1, 1.5)), ("cite", ()),
                                              ("satisfied", 2.0), ("rate_helpful", -0.1)])
def test_bad_parameters_are_refused_by_name(field, value):
    with pytest.raises(InvalidInput, match=field):
        ClickModel(**{field: value})
