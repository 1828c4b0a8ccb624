"""Team-draft interleaving (Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval quality?",
CIKM 2008): two rankings merged into one answer, each hit credited to the arm that drafted it, so one answer with
feedback compares both arms on the same query and the same user.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Literal, TypeVar

from errors import InvalidInput

T = TypeVar("T")
Arm = Literal["live", "candidate"]
ARMS: tuple[Arm, Arm] = ("live", "candidate")


def team_draft(live: Sequence[T], candidate: Sequence[T], k: int, rng: random.Random,
               key: Callable[[T], Hashable] = lambda x: x) -> list[tuple[T, Arm]]:
    """The interleaved top `k`: each round the team with fewer picks drafts (a coin flip when the teams are level)
    its highest-ranked item not already in the answer. Items are the same when `key` says so (a document id, a
    chunk id); the first arm to draft one keeps it. Stops at `k`, or when neither ranking has anything new."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInput(f"k must be an integer >= 0, got {k!r}", loc=("k",))
    rankings = {"live": list(live), "candidate": list(candidate)}
    cursor = {"live": 0, "candidate": 0}
    picks = {"live": 0, "candidate": 0}
    seen: set[Hashable] = set()
    out: list[tuple[T, Arm]] = []

    def next_new(arm: Arm) -> T | None:
        ranking = rankings[arm]
        while cursor[arm] < len(ranking) and key(ranking[cursor[arm]]) in seen:
            cursor[arm] += 1
        return ranking[cursor[arm]] if cursor[arm] < len(ranking) else None

    while len(out) < k:
        if picks["live"] < picks["candidate"]:
            order: tuple[Arm, ...] = ("live", "candidate")
        elif picks["candidate"] < picks["live"]:
            order = ("candidate", "live")
        else:
            order = ("live", "candidate") if rng.random() < 0.5 else ("candidate", "live")
        # The team whose turn it is may have run dry: the other one drafts, so the answer still fills up to k.
        for arm in order:
            item = next_new(arm)
            if item is not None:
                break
        else:
            break
        seen.add(key(item))
        cursor[arm] += 1
        picks[arm] += 1
        out.append((item, arm))
    return out


def outcome(arms: Iterable[str]) -> Literal["live", "candidate", "tie"]:
    """Who won one answer, given the arm of each hit that got a positive signal (one entry per credited hit): the
    arm with more of them, a tie when they are level (no positive signal at all included)."""
    counts = {"live": 0, "candidate": 0}
    for arm in arms:
        if arm not in counts:
            raise InvalidInput(f"arm must be 'live' or 'candidate', got {arm!r}", loc=("arm",))
        counts[arm] += 1
    if counts["candidate"] > counts["live"]:
        return "candidate"
    if counts["live"] > counts["candidate"]:
        return "live"
    return "tie"
