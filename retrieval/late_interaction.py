"""The default second stage: late interaction over sentence windows stored with each chunk.

Each chunk point carries the vectors of its sentence windows (a Qdrant multivector); Qdrant scores the
candidates by max-sim (their best window against the query) and by their dense and BM25 legs, and the three
are fused by weighted z-scores. No model runs at query time beyond the query embedding already made for the
first stage, which is why this is the default on a CPU: a cross-encoder over 50 candidates costs seconds here.
"""

from __future__ import annotations

from dataclasses import dataclass

from errors import InvalidInput
from options import KNOBS
from retrieval.fusion import weighted_zscore
from retrieval.types import Candidate, Query

LEGS = ("dense", "bm25", "windows")


@dataclass(frozen=True)
class LateInteractionWeights:
    dense: float
    bm25: float
    windows: float

    def __post_init__(self) -> None:
        for leg in LEGS:
            KNOBS[f"late_{leg}"].check(getattr(self, leg), f"late-interaction weight {leg}")
        if not any(getattr(self, leg) for leg in LEGS):
            raise InvalidInput("late-interaction weights are all 0: nothing would rank the candidates")

    def as_dict(self) -> dict[str, float]:
        return {leg: getattr(self, leg) for leg in LEGS}


class LateInteractionReranker:
    """Its weights are a stage parameter (StageConfig.late_*: the service's default, a tenant's profile or the
    request), carried by the query; `weights` is what it uses for a query that carries none."""

    name = "late-interaction"

    @classmethod
    def from_settings(cls, s) -> "LateInteractionReranker":
        return cls()  # the weights come with each query's stages

    def __init__(self, weights: LateInteractionWeights = LateInteractionWeights(0.0, 1.0, 1.0)) -> None:
        self.weights = weights

    def rerank(self, query: Query, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates or query.vector is None:  # BM25-only answers (another model's snapshot) stay as they are
            return list(candidates)
        ids = [c.id for c in candidates]
        window_query = query.window_query if query.window_query is not None else query.vector
        scored = query.store.rescore(query.collection, ids, dense=query.vector, sparse=query.sparse,
                                     windows=window_query if query.windows else None)
        legs = {leg: [scored[i].get(leg, 0.0) for i in ids] for leg in LEGS}  # no shared term: BM25 score is 0
        weights = (query.late_weights or self.weights).as_dict()
        if not query.windows:
            # A snapshot built without windows: the whole-chunk vector is the nearest dense signal there is.
            weights = {**weights, "dense": weights["dense"] + weights["windows"], "windows": 0.0}
        fused = weighted_zscore(legs, weights)
        for c, total in zip(candidates, fused):
            for leg in LEGS:
                c.scores[leg] = scored[c.id].get(leg, 0.0)
            c.scores["rerank"] = c.score = float(total)
        return sorted(candidates, key=lambda c: (-c.score, c.id))

    def recipe(self) -> dict:
        # The weights in use are the stages' and the pipeline's recipe names them.
        return {"name": self.name, "fusion": "weighted-zscore"}
