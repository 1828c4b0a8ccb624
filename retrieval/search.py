"""First-stage search: dense and BM25 legs fused inside Qdrant in one request."""

from __future__ import annotations

from dataclasses import dataclass, field

from encoders.dense import Embedder
from encoders.lexical import query_vector
from store.base import VectorStore
from store.types import Hit

FUSIONS = ("dbsf", "rrf")


@dataclass(frozen=True)
class SearchParams:
    top_k: int = 10
    candidates: int = 100   # per leg, before fusion
    fusion: str = "dbsf"    # one request, the same answer on every call (RRF ties reorder between calls)
    rrf_k: int = 60
    filters: dict | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= 1000:
            raise ValueError(f"top_k={self.top_k} is out of range [1, 1000]")
        if not self.top_k <= self.candidates <= 10_000:
            raise ValueError(f"candidates={self.candidates} must be in [top_k={self.top_k}, 10000]")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r} is not one of {FUSIONS}")


class HybridRetriever:
    def __init__(self, store: VectorStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def retrieve(self, collection: str, query: str, params: SearchParams, dense: bool = True) -> list[Hit]:
        """dense=False searches BM25 alone: used when the snapshot was built with another embedding model."""
        sparse = query_vector(query)
        if not dense:
            return self.store.search_sparse(collection, sparse, params.top_k, filters=params.filters)
        vector = self.embedder.embed([query])[0]
        if not sparse.indices:  # nothing lexical left after stopwords: the dense leg alone
            return self.store.search_dense(collection, vector, params.top_k, filters=params.filters)
        return self.store.search_hybrid(collection, vector, sparse, params.top_k, params.candidates,
                                        fusion=params.fusion, rrf_k=params.rrf_k, filters=params.filters)
