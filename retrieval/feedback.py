"""Pseudo-relevance feedback for the BM25 leg: a first pass, then the query grows by the terms its best
chunks share. Off by default: on SciFact train it lowered nDCG@10 (see the README's evaluation table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from encoders.lexical import tokenize
from errors import InvalidInput
from retrieval.types import FeedbackSearch, RewrittenQuery


@dataclass(frozen=True)
class FeedbackConfig:
    documents: int = 3   # top chunks of the first pass taken as relevant
    terms: int = 8       # expansion terms added
    weight: float = 0.3  # of each expansion term, against 1 for a query term

    def __post_init__(self) -> None:
        if not 1 <= self.documents <= 50:
            raise InvalidInput(f"feedback documents={self.documents} is out of range [1, 50]")
        if not 1 <= self.terms <= 100:
            raise InvalidInput(f"feedback terms={self.terms} is out of range [1, 100]")
        if not 0 < self.weight <= 1:
            raise InvalidInput(f"feedback weight={self.weight} is out of range (0, 1]")


class PseudoRelevanceRewriter:
    """`bind(search)` gives the rewriter of one request: it needs that request's snapshot for its first pass."""

    name = "prf"

    @classmethod
    def from_settings(cls, s) -> "PseudoRelevanceRewriter":
        return cls(FeedbackConfig())

    def __init__(self, config: FeedbackConfig, search: FeedbackSearch | None = None) -> None:
        self.config = config
        self._search = search

    def bind(self, search: FeedbackSearch) -> PseudoRelevanceRewriter:
        return PseudoRelevanceRewriter(self.config, search)

    def rewrite(self, query: str) -> RewrittenQuery:
        if self._search is None:
            raise RuntimeError("PseudoRelevanceRewriter.rewrite needs a search: call bind(search) first")
        own = set(tokenize(query))
        texts = self._search(query)[: self.config.documents]
        # Terms in more of the feedback chunks first, then by frequency: one chunk's pet words do not win.
        spread, freq = Counter(), Counter()
        for text in texts:
            tokens = tokenize(text)
            freq.update(tokens)
            spread.update(set(tokens))
        ranked = sorted((t for t in spread if t not in own), key=lambda t: (-spread[t], -freq[t], t))
        extra = tuple((t, self.config.weight) for t in ranked[: self.config.terms])
        return RewrittenQuery(lexical=query, dense=(query,), extra_terms=extra,
                              notes={"feedback_chunks": len(texts), "terms_added": len(extra)})

    def recipe(self) -> dict:
        return {"name": self.name, "leg": "bm25", "documents": self.config.documents, "terms": self.config.terms,
                "weight": self.config.weight}
