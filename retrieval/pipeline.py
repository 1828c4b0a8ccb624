"""The retrieval pipeline: rewrite -> first stage in Qdrant -> second stage -> prune.

Every stage is named in the recipe the answer carries, with its parameters, so an answer can be reproduced
from (snapshot hash, recipe, query). The same pipeline serves `/retrieve` and the evaluation runs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Mapping

import numpy as np

from encoders.dense import Embedder, bounded_parts, input_windows
from encoders.lexical import DEFAULT_LANGUAGE, QUERY_LANGUAGE_WEIGHTS, TOKENIZER_VERSION, query_vector
from errors import InvalidInput
from options import FIRST_STAGES, FUSIONS, KNOBS, LONG_QUERY_COMBINES, QUERY_EMBED_KEEPS, check_choice, default
from retrieval.cache import BoundedCache
from retrieval.context import add_highlights
from retrieval.late_interaction import LateInteractionWeights
from retrieval.fusion import weighted_zscore
from retrieval.pruning import (GROUP_BY, GROUP_CHUNKS, DocumentGroup, PruneConfig, document_of, documents_in,
                               group_documents, prune)
from retrieval.types import Candidate, Query, QueryRewriter, Reranker, RewrittenQuery
from store.base import VectorStore
from store.filters import Filters
from store.types import Hit

# A grouped answer fetches this many chunks per document asked for, and twice as many again (up to the candidates'
# ceiling) while the chunks fetched hold fewer documents than asked and more chunks are there.
GROUP_FETCH = 2
MAX_FETCH = 1000
QUERY_VECTOR_CACHE_BYTES = 8 * 1024 * 1024
CHUNK_CACHE_BYTES = 32 * 1024 * 1024


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)


@dataclass(frozen=True)
class StageConfig:
    """The ranking knobs: what a retrieval profile sets and a request may override. Names, ranges and defaults are
    options/'s (the service's defaults, as in settings.py), but for the long-query weights, off here."""

    first_stage: str = default("first_stage")
    candidates: int = default("candidates")
    fusion: str = default("fusion")
    rrf_k: int = default("rrf_k")
    rerank: str = default("rerank")
    rerank_depth: int = default("rerank_depth")
    rewrite: str = default("rewrite")
    late_dense: float = default("late_dense")
    late_bm25: float = default("late_bm25")
    late_windows: float = default("late_windows")
    query_embed_tokens: int = default("query_embed_tokens")
    # A bare config (the tests', bench/'s) scores every query with the late_* weights; the service turns the long
    # ones on from its settings.
    late_long_tokens: int = 0
    late_long_dense: float = 0.0
    late_long_bm25: float = default("late_long_bm25")
    late_long_windows: float = default("late_long_windows")
    max_per_document: int | None = default("max_per_document")
    fusion_dense: float = default("fusion_dense")
    fusion_bm25: float = default("fusion_bm25")

    @property
    def late_weights(self) -> LateInteractionWeights:
        return LateInteractionWeights(self.late_dense, self.late_bm25, self.late_windows)

    @property
    def late_long_weights(self) -> LateInteractionWeights:
        return LateInteractionWeights(self.late_long_dense, self.late_long_bm25, self.late_long_windows)

    def is_long(self, tokens: int) -> bool:
        return 0 < self.late_long_tokens < tokens

    def weights_for(self, tokens: int) -> LateInteractionWeights:
        """The late-interaction weights of a query of this many word pieces."""
        return self.late_long_weights if self.is_long(tokens) else self.late_weights

    def __post_init__(self) -> None:
        self.late_weights  # range checks, with the weights' own messages
        self.late_long_weights
        for name in ("late_long_tokens", "max_per_document", "candidates", "query_embed_tokens"):
            KNOBS[name].check(getattr(self, name))
        check_choice("first_stage", self.first_stage, FIRST_STAGES)
        check_choice("fusion", self.fusion, FUSIONS)
        for name in ("rrf_k", "fusion_dense", "fusion_bm25"):
            KNOBS[name].check(getattr(self, name))
        if self.fusion == "zscore" and not (self.fusion_dense or self.fusion_bm25):
            raise InvalidInput("fusion_dense and fusion_bm25 are both 0: nothing would rank the candidates")
        KNOBS["rerank_depth"].check(self.rerank_depth)


@dataclass(frozen=True)
class QueryEmbedding:
    vector: np.ndarray                 # the dense leg's unit query vector
    rows: np.ndarray | None = None     # one unit vector per input window, when the query did not fit the model
    tokens: int = 0                    # word pieces of the (longest) query text, special tokens included
    embedded: int = 0                  # of these, those the model read, where the bound cut a text (0: all)

    @property
    def windows(self) -> int:
        return 1 if self.rows is None else len(self.rows)


@dataclass
class PipelineResult:
    hits: list[Candidate]
    recipe: dict
    timings_ms: dict[str, float]
    pruned: int
    documents: list[DocumentGroup] | None = None  # group_by="document": the documents, each with its hits


class RetrievalPipeline:
    def __init__(self, store: VectorStore, embedder: Embedder, rerankers: dict[str, Reranker | None],
                 rewriters: dict[str, QueryRewriter | None], defaults: StageConfig, prune_config: PruneConfig,
                 long_query_combine: str = "mean", vector_cache_bytes: int = QUERY_VECTOR_CACHE_BYTES,
                 chunk_cache_bytes: int = CHUNK_CACHE_BYTES, query_embed_keep: str = "ends") -> None:
        for what, choice, known in (("rerank", defaults.rerank, rerankers), ("rewrite", defaults.rewrite, rewriters)):
            if choice not in known:
                raise ValueError(f"default {what}={choice!r} is not one of {sorted(known)}")
        check_choice("long_query_combine", long_query_combine, LONG_QUERY_COMBINES)
        self.long_query_combine = long_query_combine
        self.query_embed_keep = check_choice("query_embed_keep", query_embed_keep, QUERY_EMBED_KEEPS)
        self.store = store
        self.embedder = embedder
        self.rerankers = rerankers
        self.rewriters = rewriters
        self.defaults = defaults
        self.prune_config = prune_config
        # Query vectors repeat (chat retries, eval reruns, the same question from many users): embedding is
        # most of a query's time on a CPU, so they are kept by (model, text), within a memory bound.
        self.vectors = BoundedCache(vector_cache_bytes)
        # What pruning and highlights make of a hit's chunk (its shingles, its window vectors): the same chunks come
        # back answer after answer, and making them again was most of a deep answer's time.
        self.chunks = BoundedCache(chunk_cache_bytes)

    def stages(self, **overrides) -> StageConfig:
        """The defaults with these overrides (a profile's, a request's); unknown stage names are rejected with the
        known ones."""
        stages = replace(self.defaults, **overrides)
        if stages.rerank not in self.rerankers:
            raise InvalidInput(f"rerank={stages.rerank!r} is not one of {sorted(self.rerankers)}")
        if stages.rewrite not in self.rewriters:
            raise InvalidInput(f"rewrite={stages.rewrite!r} is not one of {sorted(self.rewriters)}")
        return stages

    def with_store(self, store: VectorStore) -> "RetrievalPipeline":
        """The same pipeline reading another store (a memo of this one); query vectors stay shared."""
        other = copy.copy(self)
        other.store = store
        return other

    def embed_query(self, texts: tuple[str, ...], bound: int | None = None) -> QueryEmbedding:
        """The dense query vector of one or more texts (multi-query, HyDE: the mean of their unit vectors). A text
        past the model's input is embedded in windows that each fit, combined by their token-weighted mean (the
        model's own pooling averages its tokens). `bound`: the most word pieces of a text the model reads (0: all;
        None: the service's query_embed_tokens); past it, the pipeline's `query_embed_keep` part is embedded."""
        bound = self.defaults.query_embed_tokens if bound is None else bound
        key = self._vector_key(texts, bound)
        hit = self.vectors.get(key)
        if hit is not None:
            return hit
        counts = self.embedder.count_tokens(list(texts))
        windows, embedded = zip(*(self._bounded_windows(t, n, bound) for t, n in zip(texts, counts)))
        vecs = self._window_vectors(list(windows))
        per_text, rows, at = [], None, 0
        for ws in windows:
            part, at = vecs[at:at + len(ws)], at + len(ws)
            if len(ws) == 1:
                per_text.append(part[0])
                continue
            weights = np.asarray(self.embedder.count_tokens(ws), dtype=np.float32)
            per_text.append(_unit((part * weights[:, None]).sum(axis=0)))
            rows = part if rows is None or len(part) > len(rows) else rows
        cut = embedded != tuple(counts)
        out = QueryEmbedding(_unit(np.mean(per_text, axis=0)), rows, max(counts), max(embedded) if cut else 0)
        self.vectors.put(key, out)
        return out

    def _vector_key(self, texts: tuple[str, ...], bound: int) -> tuple:
        # The bound and the part kept decide the vector: a query cached under one is not the vector of another.
        return self.embedder.model_id, texts, bound, self.query_embed_keep

    def _bounded_windows(self, text: str, tokens: int, bound: int) -> tuple[list[str], int]:
        """The windows the model reads of a text of `tokens` word pieces under `bound`, and their word pieces (the
        text's count when it is embedded whole)."""
        parts = bounded_parts(self.embedder, text, bound, self.query_embed_keep, tokens)
        if len(parts) == 1 and parts[0] == text:
            return input_windows(self.embedder, text, tokens), tokens
        counts = self.embedder.count_tokens(parts)
        return [w for p, n in zip(parts, counts) for w in input_windows(self.embedder, p, n)], sum(counts)

    def _window_vectors(self, windows: list[list[str]]) -> np.ndarray:
        """One row per window of every text, in order. Texts that fit the model's input go in one batch. The
        windows of a long text are the model's cost of a long query: each is embedded alone, as a batch pads every
        window to its longest one (a 300-word query's two windows, 256 and 150 word pieces, cost 512), and kept by
        its text, so a chat backend resending a conversation with one more turn pays only for the windows the
        turn changed (windows are cut from the start: the earlier ones come out the same)."""
        model = self.embedder.model_id
        rows: list[np.ndarray | None] = [None] * sum(len(ws) for ws in windows)
        short: list[int] = []
        at = 0
        for ws in windows:
            if len(ws) == 1:
                short.append(at)
            else:
                for k, w in enumerate(ws):
                    hit = self.vectors.get((model, "window", w))
                    if hit is None:
                        hit = np.asarray(self.embedder.embed([w]), dtype=np.float32)[0]
                        self.vectors.put((model, "window", w), hit)
                    rows[at + k] = hit
            at += len(ws)
        if short:
            flat = [w for ws in windows for w in ws]
            for i, v in zip(short, np.asarray(self.embedder.embed([flat[i] for i in short]), dtype=np.float32)):
                rows[i] = v
        return np.stack(rows) if rows else np.zeros((0, self.embedder.dim), dtype=np.float32)

    def embed_queries(self, texts: list[str], bound: int | None = None) -> None:
        """Put the query vectors of many texts in the cache with one model batch (what embed_query would make of
        each: a text the model reads in one window is its unit vector); longer texts are left to embed_query."""
        bound = self.defaults.query_embed_tokens if bound is None else bound
        todo = [t for t in dict.fromkeys(texts) if self.vectors.get(self._vector_key((t,), bound)) is None]
        if not todo:
            return
        counts = self.embedder.count_tokens(todo)
        fits = [(t, n, ws[0], m) for t, n in zip(todo, counts)
                for ws, m in [self._bounded_windows(t, n, bound)] if len(ws) == 1]
        if not fits:
            return
        vecs = np.asarray(self.embedder.embed([w for _, _, w, _ in fits]), dtype=np.float32)
        for (t, n, _, m), v in zip(fits, vecs):
            self.vectors.put(self._vector_key((t,), bound),
                             QueryEmbedding(_unit(np.mean([v], axis=0)), None, n, m if m != n else 0))

    def run(self, collection: str, text: str, top_k: int, stages: StageConfig, filters: Filters = None,
            dense: bool = True, windows: bool = True, highlights: bool = False,
            languages: tuple[str, ...] = (), visible: Callable[[dict], dict] | None = None,
            group_by: str | None = None) -> PipelineResult:
        """`dense=False` answers from BM25 alone: the snapshot was built with another embedding model.
        `languages`: those the snapshot's documents were analysed in (its config), or each one's weight for this
        query (ingest.language.query_language_weights); the BM25 query is analysed in each (none given: English, as
        snapshots built before languages were).
        `windows=False`: the snapshot holds no sentence-window vectors. `highlights`: set each hit's best sentence
        windows (one more read of the snapshot, for the hits' window vectors). `visible`: what of a candidate's
        payload the answer may show (a reader's view), applied as the candidates arrive: no later stage reads more.
        `group_by="document"`: the answer is the best `top_k` documents, each with its best chunks (documents in
        the result); the first stage fetches chunks until they hold `top_k` documents (or there are no more)."""
        if group_by is not None and group_by not in GROUP_BY:
            raise InvalidInput(f"group_by={group_by!r} is not one of {GROUP_BY}")
        prune_config = self.prune_for(stages)
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 3)
            clock = now

        rewriter = self.rewriters[stages.rewrite]
        if hasattr(rewriter, "bind"):  # feedback: its first pass searches this request's snapshot
            rewriter = rewriter.bind(lambda q: [h.payload.get("text", "") for h in self._first_stage(
                collection, self.embed_query((q,), stages.query_embed_tokens).vector if dense else None,
                query_vector(q, languages=languages or (DEFAULT_LANGUAGE,)), 10, stages, filters)[0]])
        rewritten = rewriter.rewrite(text) if rewriter else RewrittenQuery(lexical=text, dense=(text,))
        lap("rewrite")
        languages = languages or (DEFAULT_LANGUAGE,)
        sparse = query_vector(rewritten.lexical, dict(rewritten.extra_terms), languages)
        dense = dense and stages.first_stage != "bm25"
        embedded = self.embed_query(rewritten.dense, stages.query_embed_tokens) if dense else None
        vector = embedded.vector if embedded else None
        lap("embed")
        reranker = self.rerankers[stages.rerank] if vector is not None else None
        # Pruning drops near-duplicates: fetch a little more than top_k so it still returns top_k. A grouped answer
        # counts documents: several chunks of one document fill one place.
        depth = max(top_k * GROUP_FETCH if group_by else top_k + min(top_k, 10),
                    stages.rerank_depth if reranker else 0)
        while True:
            hits, legs = self._first_stage(collection, vector, sparse, depth, stages, filters, group_by)
            candidates = [Candidate(id=h.id, payload=visible(h.payload) if visible else h.payload,
                                    scores={"fused": h.score, **legs.get(h.id, {})}, score=h.score) for h in hits]
            if not group_by or len(hits) < depth or depth >= MAX_FETCH or documents_in(candidates) >= top_k:
                break
            depth = min(depth * 2, MAX_FETCH)
        lap("first_stage")
        query = Query(text=text, vector=vector, sparse=sparse, collection=collection, store=self.store,
                      filters=filters, windows=windows, tokens=embedded.tokens if embedded else 0,
                      late_weights=stages.weights_for(embedded.tokens if embedded else 0),
                      window_query=embedded.rows if embedded is not None and embedded.rows is not None
                      and self.long_query_combine == "max-sim" else None)
        if reranker is not None:
            # The second stage orders the best `rerank_depth`; any further hits follow in first-stage order,
            # so the top of a long list is the same as the top of a short one.
            head, tail = candidates[: stages.rerank_depth], candidates[stages.rerank_depth:]
            head = reranker.rerank(query, head)
            if head and tail:
                # `score` stays monotonic down the list: the tail keeps its first-stage spacing, shifted below
                # the last reranked hit (its "fused" score is unchanged, its "rerank" absent).
                shift = head[-1].score - tail[0].score - 1e-6
                for c in tail:
                    c.score += shift
            candidates = head + tail
            lap("rerank")
        documents = None
        if group_by:
            kept, documents, dropped = group_documents(candidates, top_k, prune_config)
        else:
            kept, dropped = prune(candidates, top_k, prune_config, self.chunks)
        self._leg_scores(query, kept)
        lap("prune")
        if highlights and windows and vector is not None:
            add_highlights(self.store, collection, kept, query.window_query if query.window_query is not None
                           else vector, self.chunks)
            lap("highlights")
        recipe = self._recipe(stages, rewriter, rewritten, reranker, vector is not None, prune_config)
        if isinstance(languages, Mapping) and len(languages) > 1:  # what this query's BM25 analyses weighed
            recipe["first_stage"]["bm25_language_weights"] = {k: round(v, 4) for k, v in sorted(languages.items())}
        if embedded is not None and (embedded.rows is not None or embedded.embedded):
            # What was done to a query past the model's input or the bound, for this answer.
            recipe["first_stage"]["query_windows"] = {
                "tokens": embedded.tokens, "windows": embedded.windows, "combine": self.long_query_combine,
                **({"embedded": embedded.embedded, "keep": self.query_embed_keep} if embedded.embedded else {})}
        if recipe["rerank"] and "weights" in recipe["rerank"] and embedded is not None:
            # Which weights scored this query: those of long queries past late_long_tokens, or the others.
            recipe["rerank"]["query_tokens"] = embedded.tokens
            recipe["rerank"]["weights_used"] = "long" if stages.is_long(embedded.tokens) else "short"
        if group_by:
            recipe["group_by"] = {"by": group_by, "chunks_per_document": prune_config.max_per_document or
                                  GROUP_CHUNKS, "chunks_fetched": depth}
        return PipelineResult(kept, recipe, timings, dropped, documents)

    def _first_stage(self, collection, vector, sparse, depth, stages: StageConfig, filters, group_by=None
                     ) -> tuple[list[Hit], dict[str, dict[str, float]]]:
        """The fused hits, and each one's leg scores where the fusion read them (zscore); grouped by document,
        zscore fuses documents (see _zscore)."""
        if vector is None:
            return self.store.search_sparse(collection, sparse, depth, filters=filters), {}
        if not sparse.indices or stages.first_stage == "dense":  # also: nothing lexical left after stopwords
            return self.store.search_dense(collection, vector, depth, filters=filters), {}
        if stages.fusion == "zscore":
            return self._zscore(collection, vector, sparse, depth, stages, filters, by_document=bool(group_by))
        return self.store.search_hybrid(collection, vector, sparse, depth, max(stages.candidates, depth),
                                        fusion=stages.fusion, rrf_k=stages.rrf_k, filters=filters), {}

    def _zscore(self, collection, vector, sparse, depth, stages: StageConfig, filters, by_document: bool = False
                ) -> tuple[list[Hit], dict[str, dict[str, float]]]:
        """Each leg's best candidates, every one of them scored on both legs (the engine rescoring those a leg
        did not return), fused by weighted z-scores over all of them; the best `depth`, each with its legs.

        `by_document`: documents are fused, not chunks. A document's score on each leg is its best candidate
        chunk's on that leg, z-scored over the candidates' documents, as the plain fusion of two document rankers
        does; its chunks follow it, best fused chunk first, each hit scored as its document. Why: fusing chunks
        and then taking a document's best chunk asks one chunk to match on both legs, and a document whose
        heading matches the words and whose body matches the meaning lost to one chunk fair on both. Chosen by the
        worst case over seven shapes' dev splits against that plain fusion (bench/fusion_steps.py): manpages-de
        -0.032 nDCG@10 fusing chunks, -0.013 fusing documents; shapes where fusing chunks scored higher (FAQ,
        SciFact's recall) stay above the plain fusion."""
        per_leg = max(stages.candidates, depth)
        # Fusing chunks needs only ids and scores: the legs come without payloads, and the `depth` kept read
        # theirs in one call. The engine handing over a payload took most of a search (a 100-candidate leg: 3 ms
        # with payloads, 0.3 ms without). Fusing documents reads each candidate's documents.
        legs = {"dense": self.store.search_dense(collection, vector, per_leg, filters=filters,
                                                 with_payload=by_document),
                "bm25": self.store.search_sparse(collection, sparse, per_leg, filters=filters,
                                                 with_payload=by_document)}
        pool: dict[str, Hit] = {}
        scores: dict[str, dict[str, float]] = {}
        for leg, hits in legs.items():
            for h in hits:
                pool.setdefault(h.id, h)
                scores.setdefault(h.id, {})[leg] = h.score
        missing_dense = [i for i in pool if "dense" not in scores[i]]
        missing_bm25 = [i for i in pool if "bm25" not in scores[i]]
        if missing_dense or missing_bm25:
            # One batch: the dense leg for those BM25 found, BM25 for those the dense leg found (a chunk sharing no
            # term with the query has no BM25 entry: its score is 0).
            rescored = self.store.rescore(collection, missing_dense + missing_bm25, dense=vector if missing_dense
                                          else None, sparse=sparse if missing_bm25 else None)
            for i in missing_dense:
                scores[i]["dense"] = rescored.get(i, {}).get("dense", 0.0)
            for i in missing_bm25:
                scores[i]["bm25"] = rescored.get(i, {}).get("bm25", 0.0)
        ids = list(pool)
        weights = {"dense": stages.fusion_dense, "bm25": stages.fusion_bm25}
        legs_of = {leg: np.array([scores[i][leg] for i in ids], dtype=np.float64) for leg in ("dense", "bm25")}
        fused = weighted_zscore(legs_of, weights)
        if not by_document:
            order = sorted(range(len(ids)), key=lambda k: (-fused[k], ids[k]))[:depth]
            payloads = {r.id: r.payload for r in self.store.retrieve(collection, [ids[k] for k in order])}
            # A point gone between the search and the read (a collection is not written once live) is left out.
            return [Hit(ids[k], float(fused[k]), payloads[ids[k]]) for k in order if ids[k] in payloads], scores
        docs: dict[str, int] = {}
        doc_of = np.array([docs.setdefault(document_of(pool[i].payload, i), len(docs)) for i in ids], dtype=np.int64)
        best = {}
        for leg, values in legs_of.items():
            best[leg] = np.full(len(docs), -np.inf)
            np.maximum.at(best[leg], doc_of, values)
        by_doc = weighted_zscore(best, weights)
        order = sorted(range(len(ids)), key=lambda k: (-by_doc[doc_of[k]], doc_of[k], -fused[k], ids[k]))[:depth]
        return [Hit(ids[k], float(by_doc[doc_of[k]]), pool[ids[k]].payload) for k in order], scores

    def _leg_scores(self, query: Query, hits: list[Candidate]) -> None:
        """Each hit's dense and BM25 scores, for the answer: read from Qdrant for the few hits that lack them."""
        missing = [c.id for c in hits if "dense" not in c.scores]
        if not missing:
            return
        scored = self.store.rescore(query.collection, missing, dense=query.vector, sparse=query.sparse)
        for c in hits:
            if c.id in scored:
                c.scores["dense"] = scored[c.id].get("dense") if query.vector is not None else None
                c.scores["bm25"] = scored[c.id].get("bm25", 0.0)

    def prune_for(self, stages: StageConfig) -> PruneConfig:
        return PruneConfig(self.prune_config.near_duplicate, stages.max_per_document, self.prune_config.twins)

    def recipe(self, stages: StageConfig | None = None) -> dict:
        """What shapes every answer under these stages, without any one query's notes: evaluation runs are
        keyed by it, so a run is reused only while the pipeline that produced it is unchanged."""
        stages = stages or self.defaults
        return self._recipe(stages, self.rewriters[stages.rewrite], None, self.rerankers[stages.rerank], True,
                            self.prune_for(stages))

    def _recipe(self, stages: StageConfig, rewriter, rewritten, reranker, dense: bool, prune_config) -> dict:
        return {
            "rewrite": {**rewriter.recipe(), **({"notes": rewritten.notes} if rewritten and rewritten.notes else {})}
            if rewriter else None,
            "first_stage": {
                "legs": {"hybrid": ["dense", "bm25"], "dense": ["dense"], "bm25": ["bm25"]}[
                    stages.first_stage if dense else "bm25"],
                "embedding": self.embedder.model_id if dense else None,
                # A query past the model's input is embedded in windows that fit it; past the bound, only its kept part.
                "long_queries": {"max_tokens": self.embedder.max_tokens, "combine": self.long_query_combine,
                                 **({"embed_tokens": stages.query_embed_tokens, "keep": self.query_embed_keep}
                                    if stages.query_embed_tokens else {})}
                if dense else None,
                "bm25_tokenizer": TOKENIZER_VERSION,
                "bm25_query_languages": QUERY_LANGUAGE_WEIGHTS,
                "fusion": stages.fusion,
                **({"rrf_k": stages.rrf_k} if stages.fusion == "rrf" else {}),
                "candidates_per_leg": stages.candidates,
                # "grouped": what a group_by="document" answer fuses; in the recipe evaluation runs are keyed by,
                # so runs scored when zscore fused chunks are computed again rather than reused
                **({"weights": {"dense": stages.fusion_dense, "bm25": stages.fusion_bm25}, "grouped": "documents"}
                   if stages.fusion == "zscore" else {}),
            },
            "rerank": {**reranker.recipe(), "depth": stages.rerank_depth,
                       **({"weights": stages.late_weights.as_dict(),
                           "long_queries": {"over_tokens": stages.late_long_tokens,
                                            "weights": stages.late_long_weights.as_dict()}
                           if stages.late_long_tokens else None}
                          if reranker.name == "late-interaction" else {})}
            if reranker else None,
            "prune": prune_config.recipe(),
            "stages": asdict(stages),
        }
