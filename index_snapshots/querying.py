"""Answering a query from a named snapshot: resolve it, check it can take this process's query vectors, apply the
tenant's retrieval profile, run the retrieval pipeline, cache the answer under the snapshot's hash. `/retrieve`
and the evaluation runs both come through here, so what is measured is what is served.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial

from cachetools import TTLCache, cachedmethod

from eval.profiles import Profile, ProfileStore
from index_snapshots.resolve import SnapshotResolver
from index_snapshots.builder import LANGUAGES_KEY, collection_name, point_id
from ingest.access import Reader, visible_payload
from ingest.filters import parse_request_filters, request_filter, sources_carry_metadata
from ingest.language import query_language_weights
from ingest.windows import sentence_spans
from retrieval.cache import ResultCache, request_key
from retrieval.context import Context, ContextConfig, build_context, token_counter
from retrieval.pipeline import RetrievalPipeline, StageConfig
from retrieval.pruning import DocumentGroup
from retrieval.types import Candidate

# A newly adopted or rolled-back profile reaches every API process within this long; each answer names the profile
# version it used, so an answer given meanwhile is still reproducible.
PROFILE_TTL_S = 2.0


@dataclass
class Answer:
    hits: list[Candidate]
    snapshot: str
    recipe: dict
    timings_ms: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    cached: bool = False
    context: Context | None = None  # the hits as prompt-ready passages, when the request asked for them
    documents: list[DocumentGroup] | None = None  # group_by="document": the documents and their hits


def profile_recipe(profile: Profile) -> dict:
    return {"version": profile.version, "source": "global default" if profile.is_default else "tuned"}


class SnapshotSearcher:
    def __init__(self, resolver: SnapshotResolver, pipeline: RetrievalPipeline, cache: ResultCache,
                 profiles: ProfileStore | None = None) -> None:
        self.resolver = resolver
        self.pipeline = pipeline
        self.cache = cache
        self.profiles = profiles
        self._profiles: TTLCache = TTLCache(maxsize=10_000, ttl=PROFILE_TTL_S)
        self._lock = threading.Lock()

    def profile(self, tenant: str) -> Profile:
        """The tenant's live retrieval profile (the global default without one), read at most every few seconds."""
        if self.profiles is None:
            return Profile(tenant, 0)
        return self._live_profile(tenant)

    # cachetools caches are not thread-safe and requests run on a thread pool: reads and writes take the lock.
    @cachedmethod(lambda self: self._profiles, lock=lambda self: self._lock)
    def _live_profile(self, tenant: str) -> Profile:
        return self.profiles.live(tenant)  # type: ignore[union-attr]  (profile() checked it)

    def stages(self, profile: Profile, **overrides) -> tuple[StageConfig, list[str]]:
        """The service's defaults, then the profile's parameters, then the request's overrides. A profile this
        service can no longer run (it names a stage that is not configured here) gives way to the global default,
        with a warning, rather than failing every request."""
        request = {k: v for k, v in overrides.items() if v is not None}
        try:
            return self.pipeline.stages(**{**profile.params, **request}), []
        except (ValueError, TypeError) as e:
            if profile.is_default:
                raise
            return self.pipeline.stages(**request), [
                f"retrieval profile v{profile.version} of tenant {profile.tenant} cannot run here ({e}): "
                "answered with the global default"]

    def recipe(self, tenant: str) -> dict:
        """What shapes the tenant's answers now (its profile included), without any one query's notes."""
        profile = self.profile(tenant)
        stages, _ = self.stages(profile)
        return {**self.pipeline.recipe(stages), "profile": profile_recipe(profile)}

    def search(self, tenant: str, query: str, top_k: int, filters: dict | None = None, snapshot: str | None = None,
               use_cache: bool = True, profile: Profile | None = None, context: ContextConfig | None = None,
               highlights: bool = False, reader: Reader | None = None, group_by: str | None = None,
               **stage_overrides) -> Answer:
        """`profile`: answer under this one instead of the tenant's live profile (the tuner's trials). `context`:
        also build the hits into passages within its token budget. `highlights`: find each hit's best sentence
        windows (what /retrieve shows; evaluation and tuning runs, reading only the ranking, go without).
        `reader`: search only the chunks of documents it may read (None: all of them); `filters` (ingest/filters.py)
        then match its readable documents only. `group_by="document"`: the best `top_k` documents, each with its
        best chunks (`Answer.documents`), counted among the documents the reader may read."""
        parse_request_filters(filters)  # a bad filter is refused before anything is looked up
        answer = self._search(tenant, query, top_k, filters, snapshot, use_cache, profile, highlights, reader,
                              group_by, **stage_overrides)
        return self.with_context(tenant, answer, context) if context is not None else answer

    def search_batch(self, tenant: str, requests: list[dict]) -> list[Answer]:
        """Many searches (each a `search` keyword set) with their query vectors made in one model batch; each
        answer is the one `search` gives alone."""
        for r in requests:  # one bad filter refuses the batch before any of it runs
            parse_request_filters(r.get("filters"))
        self.pipeline.embed_queries([r["query"] for r in requests])
        return [self.search(tenant, **r) for r in requests]

    def with_context(self, tenant: str, answer: Answer, context: ContextConfig) -> Answer:
        """The answer with its context block, read from the snapshot that answered (a new Answer: a cached one is
        shared)."""
        started = time.perf_counter()
        counter = token_counter(context.tokenizer, self.pipeline.embedder)
        block = build_context(answer.hits, self.pipeline.store, collection_name(tenant, answer.snapshot), counter,
                              context, point_id, sentence_spans)
        timings = {**answer.timings_ms, "context": round((time.perf_counter() - started) * 1000, 3)}
        timings["total"] = round(answer.timings_ms.get("total", 0.0) + timings["context"], 3)
        return replace(answer, timings_ms=timings, context=block)

    def _search(self, tenant: str, query: str, top_k: int, filters: dict | None, snapshot: str | None,
                use_cache: bool, profile: Profile | None, highlights: bool, reader: Reader | None,
                group_by: str | None, **stage_overrides) -> Answer:
        started = time.perf_counter()
        snap = self.resolver.resolve(tenant, snapshot)
        profile = profile or self.profile(tenant)
        stages, warnings = self.stages(profile, **stage_overrides)
        # The store filter, which is what decides the answer: part of the cache key, the reader's tokens with it.
        where = request_filter(filters, reader, sources_carry_metadata(snap.config))
        key = request_key(snap.hash, query, top_k=top_k, filters=where, stages=stages,
                          prune=self.pipeline.prune_config.recipe(), profile=profile.version,
                          # An access change rewrites the snapshot's payloads in place and moves this: an answer
                          # cached under the old lists is never served again (index_snapshots/access.py).
                          access_rev=snap.access_rev,
                          **({"highlights": True} if highlights else {}),
                          **({"group_by": group_by} if group_by else {}))
        resolved = round((time.perf_counter() - started) * 1000, 3)
        if use_cache and (hit := self.cache.get(key)) is not None:
            return Answer(hit.hits, hit.snapshot, hit.recipe, {"resolve": resolved, "total": resolved},
                          hit.warnings, cached=True, documents=hit.documents)
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
        # The filter let through only chunks the reader may read; a chunk shared with a document it may not read
        # still names that one among its sources: left out as the candidates arrive, before pruning (near-duplicate
        # twins, the cap per document), context or the cache see them, so none of these is decided by it.
        result = self.pipeline.run(snap.collection, query, top_k, stages, filters=where, dense=same_model,
                                   windows=bool(snap.config.get("windows")), highlights=highlights,
                                   languages=query_language_weights(query, snap.config.get(LANGUAGES_KEY) or ()),
                                   visible=partial(visible_payload, reader=reader) if reader else None,
                                   group_by=group_by)
        result.recipe["profile"] = profile_recipe(profile)
        timings = {"resolve": resolved, **result.timings_ms}
        timings["total"] = round((time.perf_counter() - started) * 1000, 3)
        answer = Answer(result.hits, snap.hash, result.recipe, timings, warnings, documents=result.documents)
        if use_cache:
            self.cache.put(key, answer)
        return answer
