"""A simulated chat user and its model, for tests and the bench: what a chat backend would report about one answer.

A cascade click model with position bias (Craswell et al. 2008, "An experimental comparison of click position-bias
models"; the examination decay of the position-based model): the user reads the answer's hits from the top, reaches
rank r (0-based) with probability (1 + r) ** -eta, clicks a hit it examines with a probability that grows with its
relevance label, and stops reading after a click on a relevant hit with probability `satisfied`. The chat model
cites the hits it used: relevant ones far more often, earlier ones a little more often (a weaker decay,
`cite_eta`). The answer is rated `helpful` when a relevant hit was cited or clicked (with probability
`rate_helpful`), `not_helpful` when none was (with probability `rate_not_helpful`), else not rated.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from errors import InvalidInput

POSITIVE = ("cited", "clicked")


@dataclass(frozen=True)
class Feedback:
    """`signals`: (rank in the shown answer, "cited" | "clicked"), each once; `helpful`: the user's rating, None
    when the user gave none."""

    signals: tuple[tuple[int, str], ...]
    helpful: bool | None

    def positive_ranks(self) -> list[int]:
        """Ranks of the hits that got a positive signal, each once (an interleaved answer credits their arms)."""
        return sorted({rank for rank, signal in self.signals if signal in POSITIVE})

    def reported(self) -> bool:
        """The chat backend has something to send: a signal or a rating (an answer without either gets no
        feedback, so a rollout never counts it)."""
        return bool(self.signals) or self.helpful is not None

    def positive(self) -> bool:
        """A canary arm's success, as the service counts it: a cited or clicked hit or a helpful rating, and not
        rated not helpful."""
        return self.helpful is not False and (bool(self.signals) or self.helpful is True)


@dataclass
class ClickModel:
    """Probabilities are indexed by relevance label (labels past the end use the last entry; unlabelled is 0)."""

    seed: int = 0
    eta: float = 1.0
    cite_eta: float = 0.3
    click: tuple[float, ...] = (0.05, 0.6, 0.8)
    cite: tuple[float, ...] = (0.03, 0.7, 0.85)
    satisfied: float = 0.6
    rate_helpful: float = 0.7
    rate_not_helpful: float = 0.5
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("eta", "cite_eta"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)!r}", loc=(name,))
        for name in ("click", "cite"):
            probs = getattr(self, name)
            if not probs or not all(0 <= p <= 1 for p in probs):
                raise InvalidInput(f"{name} must be probabilities in [0, 1], one per label, got {probs!r}",
                                   loc=(name,))
        for name in ("satisfied", "rate_helpful", "rate_not_helpful"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidInput(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}",
                                   loc=(name,))
        self.rng = random.Random(self.seed)

    def examined(self, rank: int) -> float:
        """How likely the user reads the hit at `rank` (0-based), before any stop after a click."""
        return (1 + rank) ** -self.eta

    def respond(self, shown: Sequence[Hashable], qrels: Mapping[Hashable, int]) -> Feedback:
        """The feedback on one answer showing `shown` (document ids, best first) to a query with these labels."""
        signals: list[tuple[int, str]] = []
        engaged_relevant = False
        reading = True
        for rank, doc in enumerate(shown):
            label = max(0, int(qrels.get(doc, 0)))
            if self.rng.random() < self.cite[min(label, len(self.cite) - 1)] * (1 + rank) ** -self.cite_eta:
                signals.append((rank, "cited"))
                engaged_relevant |= label > 0
            # Cascade: the user goes on from rank r-1 to r with probability examined(r) / examined(r-1), so it
            # reaches rank r with probability examined(r) when no click satisfied it on the way.
            if reading and rank and self.rng.random() >= self.examined(rank) / self.examined(rank - 1):
                reading = False
            if reading and self.rng.random() < self.click[min(label, len(self.click) - 1)]:
                signals.append((rank, "clicked"))
                engaged_relevant |= label > 0
                if label > 0 and self.rng.random() < self.satisfied:
                    reading = False
        if engaged_relevant:
            helpful = True if self.rng.random() < self.rate_helpful else None
        else:
            helpful = False if self.rng.random() < self.rate_not_helpful else None
        return Feedback(tuple(signals), helpful)
