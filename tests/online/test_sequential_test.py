"""The rollout's sequential test (online/sequential.py): hand-computed intervals, the rule, and by simulation that
watching it after every event keeps an A/A rollout's stop rate within 1 - confidence while a clearly worse
candidate is stopped."""

from __future__ import annotations

import math
import random

import pytest

from errors import InvalidInput
from online.sequential import CanaryCounts, InterleaveCounts, decide, mixture_rho, radius, rate_interval

RULE = {"min_feedback": 200, "max_regression": 0.02, "confidence": 0.95}


def test_the_mixture_precision_by_hand():
    # log(1/0.05) = 2.995732; 200 / (2 * 2.995732 + log(1 + 2 * 2.995732)) = 200 / (5.991465 + 1.944691)
    assert mixture_rho(200, 0.95) == pytest.approx(25.20112, abs=1e-4)


def test_an_interleave_interval_by_hand():
    # n = 200, mean = (60 - 40) / 200 = 0.1; variance = (60 + 40 + 2) / 202 - 0.1^2 = 0.494950
    # radius = sqrt(0.494950) * sqrt((200 + 25.20112) * (log(1 + 200 / 25.20112) + 5.991465)) / 200
    #        = 0.703527 * sqrt(225.20112 * (2.190105 + 5.991465)) / 200 = 0.703527 * 42.92443 / 200 = 0.150992
    d = decide(InterleaveCounts(wins=60, losses=40, ties=100), **RULE)
    assert d.estimate == pytest.approx(0.1)
    assert (d.low, d.high) == (pytest.approx(0.1 - 0.150992, abs=1e-5), pytest.approx(0.1 + 0.150992, abs=1e-5))
    assert d.events == 200 and d.confidence == 0.95
    assert d.action == "continue" and "below -0.02 and above 0" in d.reason


def test_a_canary_interval_by_hand():
    # n = 1000; estimate = 30/100 - 550/900 = -0.311111.
    # separate: (31/102)(71/102)/100 + (551/902)(351/902)/900 = 0.00211553 + 0.00026412 = 0.00237965
    # pooled:   (581/1002)(421/1002) * (1/100 + 1/900) = 0.243626 * 0.0111111 = 0.00270696 (the larger)
    # radius = sqrt(2.70696) * sqrt((1000 + 25.20112) * (log(1 + 1000 / 25.20112) + 5.991465)) / 1000
    #        = 1.645284 * sqrt(1025.20112 * 9.697215) / 1000 = 1.645284 * 99.70753 / 1000 = 0.164047
    d = decide(CanaryCounts(candidate_successes=30, candidate_trials=100, live_successes=550, live_trials=900),
               **RULE)
    assert d.estimate == pytest.approx(-0.311111, abs=1e-6)
    assert d.low == pytest.approx(-0.311111 - 0.164047, abs=1e-5)
    assert d.high == pytest.approx(-0.311111 + 0.164047, abs=1e-5)
    assert d.action == "stop" and "worse than live" in d.reason


def test_a_rate_interval_by_hand():
    # 30 of 100, variance (31/102)(71/102) = 0.211553, sqrt = 0.459949; with n = 100:
    # sqrt((100 + 25.20112) * (log(1 + 100 / 25.20112) + 5.991465)) / 100 = sqrt(125.20112 * (1.602996 + 5.991465))
    # / 100 = sqrt(950.8350) / 100 = 0.308356; times 0.459949 = 0.141828
    rate, low, high = rate_interval(30, 100, 0.95, tune_at=200)
    assert (rate, low, high) == (0.3, pytest.approx(0.3 - 0.141828, abs=1e-5), pytest.approx(0.3 + 0.141828, abs=1e-5))
    assert rate_interval(100, 100, 0.95)[2] == 1.0  # clipped
    assert math.isnan(rate_interval(0, 0, 0.95)[0])


def test_the_rule():
    assert decide(InterleaveCounts(199, 0, 0), **RULE).action == "continue"  # before min_feedback
    assert "199 of 200 feedback events before any decision" in decide(InterleaveCounts(199, 0, 0), **RULE).reason
    advance = decide(InterleaveCounts(900, 300, 800), **RULE)
    assert advance.action == "advance" and advance.low > -0.02 and "not worse than live by more than 0.02" \
        in advance.reason
    assert decide(InterleaveCounts(300, 900, 800), **RULE).action == "stop"
    # Level so far, but not yet narrow enough to say the candidate loses at most 0.02.
    assert decide(InterleaveCounts(400, 400, 1200), **RULE).action == "continue"
    # A canary with an arm that has no answer yet decides nothing.
    empty = decide(CanaryCounts(0, 0, 500, 900), **RULE)
    assert empty.action == "continue" and math.isnan(empty.estimate) and empty.low == -math.inf


def test_min_feedback_counts_the_events_of_the_step_when_given():
    counts = InterleaveCounts(900, 300, 800)
    assert decide(counts, **RULE, step_events=150).action == "continue"
    assert "150 of 200 feedback events in this step" in decide(counts, **RULE, step_events=150).reason
    assert decide(counts, **RULE, step_events=200).action == "advance"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("confidence", 1.0, "confidence must be a number in [0.5, 1)"),
    ("confidence", 0.2, "confidence must be a number in [0.5, 1)"),
    ("max_regression", -0.1, "max_regression must be a number in [0, 1)"),
    ("min_feedback", -1, "min_feedback must be an integer >= 0"),
    ("min_feedback", 2.5, "min_feedback must be an integer >= 0"),
    ("step_events", -3, "step_events must be an integer >= 0"),
])
def test_bad_parameters_are_refused_by_name(field, value, message):
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        decide(InterleaveCounts(1, 1, 1), **{**RULE, field: value})


def test_bad_counts_are_refused_by_name():
    with pytest.raises(InvalidInput, match="losses must be an integer >= 0"):
        decide(InterleaveCounts(1, -1, 1), **RULE)
    with pytest.raises(InvalidInput, match="candidate_successes must not exceed candidate_trials"):
        decide(CanaryCounts(5, 4, 1, 10), **RULE)
    with pytest.raises(InvalidInput, match="counts must be InterleaveCounts or CanaryCounts"):
        decide({"wins": 1}, **RULE)  # type: ignore[arg-type]


def run_interleave(rng: random.Random, p_win: float, p_loss: float, rule: dict, cap: int) -> str:
    """One rollout watched after every event: its first decision, or 'continue' at the cap."""
    wins = losses = ties = 0
    for _ in range(cap):
        u = rng.random()
        wins, losses, ties = wins + (u < p_win), losses + (p_win <= u < p_win + p_loss), ties + (u >= p_win + p_loss)
        action = decide(InterleaveCounts(wins, losses, ties), **rule).action
        if action != "continue":
            return action
    return "continue"


def run_canary(rng: random.Random, p_candidate: float, p_live: float, share: float, rule: dict, cap: int) -> str:
    c_s = c_n = l_s = l_n = 0
    for _ in range(cap):
        if rng.random() < share:
            c_n, c_s = c_n + 1, c_s + (rng.random() < p_candidate)
        else:
            l_n, l_s = l_n + 1, l_s + (rng.random() < p_live)
        action = decide(CanaryCounts(c_s, c_n, l_s, l_n), **rule).action
        if action != "continue":
            return action
    return "continue"


# Confidence 0.9 (so at most 10 % may stop) and a loose max_regression, so an A/A rollout reaches its advance
# in a few thousand events and the test stays fast; a fixed-size interval checked this often stops far more often.
LOOSE = {"min_feedback": 50, "max_regression": 0.1, "confidence": 0.9}


def test_an_aa_interleave_rollout_watched_after_every_event_rarely_stops():
    rng = random.Random(35)
    stops = sum(run_interleave(rng, 0.3, 0.3, LOOSE, cap=3000) == "stop" for _ in range(300))
    assert stops <= 0.1 * 300, stops


def test_an_aa_canary_watched_after_every_event_rarely_stops():
    rng = random.Random(36)
    stops = sum(run_canary(rng, 0.5, 0.5, 0.3, LOOSE, cap=2000) == "stop" for _ in range(300))
    assert stops <= 0.1 * 300, stops


def test_a_clearly_worse_candidate_is_stopped():
    rng = random.Random(37)
    interleave = [run_interleave(rng, 0.15, 0.35, RULE, cap=5000) for _ in range(40)]
    canary = [run_canary(rng, 0.35, 0.55, 0.5, RULE, cap=5000) for _ in range(40)]
    assert interleave.count("stop") >= 38 and canary.count("stop") >= 38, (interleave, canary)


def test_radius_shrinks_with_events_and_is_infinite_without():
    rho = mixture_rho(100, 0.95)
    assert radius(0, 0.25, 0.95, rho) == math.inf
    assert radius(100, 0.25, 0.95, rho) > radius(1000, 0.25, 0.95, rho) > radius(10_000, 0.25, 0.95, rho)
