"""The small protocols the retrieval pipeline is made of, and the values that pass between them.

One method each (`Reranker.rerank`, `QueryRewriter.rewrite`), a real implementation and a deterministic fake:
the pipeline composes them and records each one's `recipe()` in the answer, so any answer can be reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from store.base import VectorStore
from store.filters import Filters
from store.types import SparseVector


@dataclass
class Candidate:
    """A chunk on its way through the stages. `scores` gains one entry per stage: dense, bm25, fused, rerank."""

    id: str                      # point id (UUID of the chunk hash)
    payload: dict                # chunk_hash, text, doc_ids, sources, metadata
    scores: dict[str, float | None] = field(default_factory=dict)
    score: float = 0.0           # the score the current order is by
    # (start, end, score) of its best sentence windows, in chunk-text characters (set on the answer's hits)
    highlights: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.payload.get("text", "")


@dataclass
class Query:
    """What the stages know about the request. `vector` is the dense query embedding (None when the snapshot was
    built with another model and only BM25 answers); `collection` and `store` let a stage read the snapshot;
    `windows` says whether its points carry sentence-window vectors (snapshots built without them do not);
    `tokens` is the query's length in the model's word pieces; `window_query`, when set, holds one vector per
    model-sized window of a long query, to score sentence windows by (max-sim, summed) instead of `vector`."""

    text: str
    vector: np.ndarray | None
    sparse: SparseVector
    collection: str
    store: VectorStore
    filters: Filters = None
    windows: bool = True
    tokens: int = 0
    window_query: np.ndarray | None = None
    late_weights: object | None = None  # LateInteractionWeights of this request's stages


@dataclass(frozen=True)
class RewrittenQuery:
    """Texts for each leg: `lexical` feeds BM25, `dense` texts are embedded and averaged for the dense leg."""

    lexical: str
    dense: tuple[str, ...]
    notes: dict = field(default_factory=dict, hash=False, compare=False)
    # Tokenised terms added to the BM25 leg with their weights (pseudo-relevance feedback).
    extra_terms: tuple[tuple[str, float], ...] = ()


class Reranker(Protocol):
    name: str

    def rerank(self, query: Query, candidates: list[Candidate]) -> list[Candidate]:
        """Return the candidates best first, each with scores["rerank"] set and `score` the new order's score."""
        ...

    def recipe(self) -> dict: ...


class QueryRewriter(Protocol):
    name: str

    def rewrite(self, query: str) -> RewrittenQuery: ...

    def recipe(self) -> dict: ...


# What a feedback rewriter may ask of the snapshot being searched: query text -> texts of the top chunks.
FeedbackSearch = Callable[[str], list[str]]
