"""Answering a query from a named snapshot: resolve it, check it can take this process's query vectors, run
the retrieval pipeline, cache the answer under the snapshot's hash. `/retrieve` and the evaluation runs both
come through here, so what is measured is what is served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from index_snapshots.resolve import SnapshotResolver
from retrieval.cache import ResultCache, request_key
from retrieval.pipeline import RetrievalPipeline
from retrieval.pruning import PruneConfig
from retrieval.types import Candidate


@dataclass
class Answer:
    hits: list[Candidate]
    snapshot: str
    recipe: dict
    timings_ms: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    cached: bool = False


class SnapshotSearcher:
    def __init__(self, resolver: SnapshotResolver, pipeline: RetrievalPipeline, cache: ResultCache) -> None:
        self.resolver = resolver
        self.pipeline = pipeline
        self.cache = cache

    def search(self, tenant: str, query: str, top_k: int, filters: dict | None = None, snapshot: str | None = None,
               max_per_document: int | None = None, use_cache: bool = True, **stage_overrides) -> Answer:
        started = time.perf_counter()
        snap = self.resolver.resolve(tenant, snapshot)
        stages = self.pipeline.stages(**stage_overrides)
        prune = self.pipeline.prune_config
        if max_per_document is not None:
            prune = PruneConfig(prune.near_duplicate, max_per_document)
        key = request_key(snap.hash, query, top_k=top_k, filters=filters, stages=stages, prune=prune.recipe())
        resolved = round((time.perf_counter() - started) * 1000, 3)
        if use_cache and (hit := self.cache.get(key)) is not None:
            return Answer(hit.hits, hit.snapshot, hit.recipe, {"resolve": resolved, "total": resolved},
                          hit.warnings, cached=True)
        warnings = []
        # A snapshot built with another embedding model cannot take this model's query vectors: answer from its
        # BM25 leg rather than from a mismatched vector space, and say so.
        built_with = snap.config.get("embedding", {}).get("model")
        same_model = built_with == self.pipeline.embedder.model_id
        if not same_model:
            warnings.append(f"snapshot {snap.hash[:12]} was built with embedding model {built_with}; this service "
                            f"loads {self.pipeline.embedder.model_id}: answered from BM25 alone until a rebuilt "
                            "snapshot is live")
        elif stages.rerank == "late-interaction" and not snap.config.get("windows"):
            warnings.append(f"snapshot {snap.hash[:12]} holds no sentence windows: the late-interaction stage "
                            "ranked by its dense and BM25 legs only (the windows' weight went to dense)")
        result = self.pipeline.run(snap.collection, query, top_k, stages, filters=filters, dense=same_model,
                                   prune_config=prune, windows=bool(snap.config.get("windows")))
        timings = {"resolve": resolved, **result.timings_ms}
        timings["total"] = round((time.perf_counter() - started) * 1000, 3)
        answer = Answer(result.hits, snap.hash, result.recipe, timings, warnings)
        if use_cache:
            self.cache.put(key, answer)
        return answer
