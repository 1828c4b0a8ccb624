"""The sequential test a rollout decides with: an always-valid confidence sequence for "candidate minus live",
checked after every feedback event, so looking at it as often as one likes does not raise the error rate.

Which test: the two-sided normal-mixture boundary (Robbins 1970; Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 2021, the two-sided normal mixture), applied to the
standardised running sum with the running variance estimate plugged in: the asymptotic confidence sequence of
Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas ("Time-uniform central limit theory and asymptotic confidence
sequences", Ann. Statist. 2024). With mixture precision rho and n events, the radius around the running mean is

    sigma_hat * sqrt((n + rho) * (log(1 + n / rho) + 2 * log(1 / alpha))) / n,   alpha = 1 - confidence,

and the whole sequence of intervals covers the true difference at every n at once with probability about
`confidence`. rho is fixed before the first event (the boundary is tightest at `min_feedback` events), as the
mixture requires. This is the mixture SPRT's interval form (mSPRT, Johari et al., "Always valid inference", 2017):
the mSPRT rejects "no difference" exactly when this interval leaves 0.

Why hand-written: the boundary is the one line above. The libraries that carry it were checked: confseq (its C++
`normal_mixture_bound` is this formula, same rho) builds from source with Boost, last released 2023; savvi pulls
cvxpy; expectation needs Python >= 3.12. None is worth a dependency for one line; the tests check the values.

Decisions (candidate minus live, higher is better): `stop` when the whole interval is below 0 (the candidate is
worse), `advance` when its lower end is above -max_regression (the candidate is not worse by more than that), else
`continue`; nothing before `min_feedback` events. A stop needs the interval to miss a true 0 on one side, so an A/A
rollout stops with probability about (1 - confidence) / 2 however often it is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from errors import InvalidInput

Action = Literal["continue", "advance", "stop"]


@dataclass(frozen=True)
class InterleaveCounts:
    """Interleaved answers with feedback, by outcome() from the candidate's side."""

    wins: int
    losses: int
    ties: int

    @property
    def events(self) -> int:
        return self.wins + self.losses + self.ties


@dataclass(frozen=True)
class CanaryCounts:
    """Answers with feedback per arm (trials) and those of them with a positive signal (successes)."""

    candidate_successes: int
    candidate_trials: int
    live_successes: int
    live_trials: int

    @property
    def events(self) -> int:
        return self.candidate_trials + self.live_trials


@dataclass(frozen=True)
class Decision:
    """`estimate`: candidate minus live (interleave: share of answers the candidate won minus the share it lost;
    canary: the candidate's success rate minus live's), within [low, high] at `confidence`, valid at any stopping
    time. `reason` says why in a sentence for the decision log."""

    action: Action
    estimate: float
    low: float
    high: float
    confidence: float
    events: int
    reason: str


def mixture_rho(tune_at: float, confidence: float) -> float:
    """The mixture precision that makes the boundary tightest after `tune_at` events (Howard et al. 2021)."""
    log_inv_alpha = math.log(1 / (1 - confidence))
    return tune_at / (2 * log_inv_alpha + math.log(1 + 2 * log_inv_alpha))


def radius(n: int, variance: float, confidence: float, rho: float) -> float:
    """Half-width of the normal-mixture confidence sequence around the mean of `n` events of this variance."""
    if n <= 0:
        return math.inf
    return math.sqrt(variance) * math.sqrt((n + rho) * (math.log(1 + n / rho) + 2 * math.log(1 / (1 - confidence)))) / n


def rate_interval(successes: int, trials: int, confidence: float, tune_at: int = 200) -> tuple[float, float, float]:
    """One arm's success rate with its always-valid interval, clipped to [0, 1]: the figures a rollout shows per arm.
    (nan, 0, 1) before any trial."""
    _check_confidence(confidence)
    _check_count("successes", successes)
    _check_count("trials", trials)
    if successes > trials:
        raise InvalidInput(f"successes ({successes}) must not exceed trials ({trials})", loc=("successes",))
    if trials == 0:
        return math.nan, 0.0, 1.0
    rate = successes / trials
    half = radius(trials, _bernoulli_variance(successes, trials), confidence, mixture_rho(max(tune_at, 1), confidence))
    return rate, max(0.0, rate - half), min(1.0, rate + half)


def decide(counts: InterleaveCounts | CanaryCounts, *, min_feedback: int, max_regression: float,
           confidence: float, step_events: int | None = None) -> Decision:
    """What a rollout should do now, from all its feedback so far (see the module's doc for the rule).

    Pass the counts of the whole rollout, and with `step_events` the events since its current step began: the
    `min_feedback` wait then applies to each step, while one confidence sequence runs over every step. Starting
    the counts afresh at each step would give an A/A rollout a fresh chance of a false stop at each step."""
    _check_count("min_feedback", min_feedback)
    if step_events is not None:
        _check_count("step_events", step_events)
    if isinstance(max_regression, bool) or not isinstance(max_regression, (int, float)) \
            or not 0 <= max_regression < 1:
        raise InvalidInput(f"max_regression must be a number in [0, 1), got {max_regression!r}",
                           loc=("max_regression",))
    _check_confidence(confidence)
    if isinstance(counts, InterleaveCounts):
        for name in ("wins", "losses", "ties"):
            _check_count(name, getattr(counts, name))
        estimate, variance = _interleave_moments(counts)
    elif isinstance(counts, CanaryCounts):
        for name in ("candidate_successes", "candidate_trials", "live_successes", "live_trials"):
            _check_count(name, getattr(counts, name))
        for arm in ("candidate", "live"):
            if getattr(counts, f"{arm}_successes") > getattr(counts, f"{arm}_trials"):
                raise InvalidInput(f"{arm}_successes must not exceed {arm}_trials", loc=(f"{arm}_successes",))
        estimate, variance = _canary_moments(counts)
    else:
        raise InvalidInput(f"counts must be InterleaveCounts or CanaryCounts, got {type(counts).__name__}")
    n = counts.events
    half = radius(n, variance, confidence, mixture_rho(max(min_feedback, 1), confidence)) \
        if not math.isnan(estimate) else math.inf
    low, high = (estimate - half, estimate + half) if not math.isnan(estimate) else (-math.inf, math.inf)
    waited = n if step_events is None else min(step_events, n)
    if waited < min_feedback:
        scope = "" if step_events is None else " in this step"
        return Decision("continue", estimate, low, high, confidence, n,
                        f"{waited} of {min_feedback} feedback events{scope} before any decision")
    if high < 0:
        return Decision("stop", estimate, low, high, confidence, n,
                        f"the candidate is worse than live: {_shown(estimate, low, high, confidence)}, "
                        f"entirely below 0 after {n} events")
    if low > -max_regression:
        return Decision("advance", estimate, low, high, confidence, n,
                        f"the candidate is not worse than live by more than {max_regression:g}: "
                        f"{_shown(estimate, low, high, confidence)} "
                        f"after {n} events")
    return Decision("continue", estimate, low, high, confidence, n,
                    f"not yet decided: {_shown(estimate, low, high, confidence)} after {n} events reaches below "
                    f"-{max_regression:g} and above 0")


def _shown(estimate: float, low: float, high: float, confidence: float) -> str:
    return f"{estimate:+.4f} in [{low:+.4f}, {high:+.4f}] at {confidence:g}"


def _interleave_moments(counts: InterleaveCounts) -> tuple[float, float]:
    """Each answer scores +1 (candidate won), -1 (lost) or 0 (tie). The variance counts one win and one loss more
    than were seen, so that a run of ties at the start does not make the interval collapse to a point."""
    n = counts.events
    if n == 0:
        return math.nan, math.nan
    mean = (counts.wins - counts.losses) / n
    decisive = (counts.wins + counts.losses + 2) / (n + 2)
    return mean, max(decisive - mean * mean, 1 / (n + 2))


def _canary_moments(counts: CanaryCounts) -> tuple[float, float]:
    """Difference of the two rates; per-event variance n * Var(difference), so the pooled event count drives the
    boundary. Var(difference) is the larger of the two-sample estimate (each arm's own rate) and the one with the
    rates pooled: a small canary arm that has seen few or no successes yet would otherwise get an interval far too
    narrow (at a 10 % share and a 10 % success rate the A/A stop rate was 6 % with the first alone, 0.2 % with the
    larger of the two; 1000 simulated rollouts of 4000 events, checked after each)."""
    c_s, c_n, l_s, l_n = (counts.candidate_successes, counts.candidate_trials, counts.live_successes,
                          counts.live_trials)
    if not c_n or not l_n:
        return math.nan, math.nan
    n = counts.events
    separate = _bernoulli_variance(c_s, c_n) / c_n + _bernoulli_variance(l_s, l_n) / l_n
    pooled = _bernoulli_variance(c_s + l_s, n) * (1 / c_n + 1 / l_n)
    return c_s / c_n - l_s / l_n, n * max(separate, pooled)


def _bernoulli_variance(successes: int, trials: int) -> float:
    """p(1-p) with one success and one failure added (Laplace): never 0, so an arm that has only seen successes
    so far does not get a zero-width interval."""
    p = (successes + 1) / (trials + 2)
    return p * (1 - p)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be an integer >= 0, got {value!r}", loc=(name,))


def _check_confidence(confidence: object) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise InvalidInput(f"confidence must be a number in [0.5, 1), got {confidence!r}", loc=("confidence",))
