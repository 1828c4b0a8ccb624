"""Self-tuning per tenant: search the stage parameters on the tenant's own labelled queries, estimate what the
search is worth by k-fold cross-validation, and adopt the result as the tenant's next retrieval profile only when it
beats the live profile on held-out folds by more than the noise (a paired bootstrap over queries).

Every trial answers through SnapshotSearcher on the tenant's live snapshot, as `/retrieve` would, over a pipeline
whose store remembers what it read (the snapshot cannot change under it): late-interaction weights then cost the
fusion of legs already scored, not another round of searches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from errors import Conflict, InvalidInput
from eval.metrics import evaluate, metric_names
from eval.profiles import Profile, ProfileStore
from eval.runner import doc_ranking
from eval.store import EvalStore
from eval.synthetic import SourceDocument, SyntheticSet, synthetic_queries
from eval.tuning import SearchSpace, config_key, cross_validate, paired_bootstrap
from index_snapshots.evaluation import EVAL_GROUP_BY
from index_snapshots.manifest import Manifest
from ingest.catalog import Catalog
from index_snapshots.querying import SnapshotSearcher
from options import FUSIONS, KNOBS, LATE, LATE_LONG, NONE, RERANKERS, REWRITERS, tuned
from retrieval.cache import ResultCache
from retrieval.pipeline import StageConfig
from store.memo import MemoStore

log = logging.getLogger(__name__)

# The order the coordinate search moves the knobs in (their grids: options/); the long-query weights come last,
# when searched.
SEARCH_ORDER = ("fusion", "fusion_dense", "candidates", "rerank", "rerank_depth", *LATE, "rewrite",
                "max_per_document")
LONG_SHARE = 0.1  # the weights of long queries are searched when at least this share of the queries is long
MIN_QUERIES = 20  # fewer than this, and 5 folds of 4 queries say nothing a bootstrap could trust
SYNTHETIC_PER_KIND = 100  # queries of each kind (title, heading, held-out sentence) tuning without labels makes


@dataclass(frozen=True)
class TuningRequest:
    query_sets: tuple[str, ...] = ()   # names; empty: every active set of the tenant
    folds: int = 5
    metric: str = "ndcg@10"
    seed: int = 0
    level: float = 0.95               # of the bootstrap interval the gain must clear
    # Queries made from the tenant's own documents (eval/synthetic.py) instead of its labelled sets: tuning
    # without labels. Judged the same way, on held-out folds of those queries.
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.synthetic and self.query_sets:
            raise InvalidInput("synthetic tuning makes its own queries: it takes no query_sets")

    def as_dict(self) -> dict:
        return {"query_sets": list(self.query_sets), "folds": self.folds, "metric": self.metric, "seed": self.seed,
                "level": self.level, "synthetic": self.synthetic}

    @classmethod
    def from_dict(cls, d: dict) -> "TuningRequest":
        return cls(tuple(d.get("query_sets") or ()), int(d.get("folds", 5)), str(d.get("metric", "ndcg@10")),
                   int(d.get("seed", 0)), float(d.get("level", 0.95)), bool(d.get("synthetic", False)))


def search_space(defaults: StageConfig, rerankers: Sequence[str], rewriters: Sequence[str],
                 long_queries: bool = False) -> SearchSpace:
    """The knobs a tenant's queries may move, each with the service's default first (preferred on a tie). The
    weights of long queries join when the queries have enough long ones to tell them apart."""

    def around(value, *others):
        return tuple(dict.fromkeys([value, *others]))

    grids = {
        # zscore first: a tie between fusions keeps the one that gives the same answer on every call.
        "fusion": ("zscore", *FUSIONS),
        "rerank": (*tuned(RERANKERS, rerankers), NONE),
        "rewrite": (NONE, *tuned(REWRITERS, rewriters)),
        **{k.name: k.search for k in KNOBS.values() if k.search},
    }
    order = SEARCH_ORDER + (LATE_LONG if long_queries and defaults.late_long_tokens else ())
    values = {name: around(getattr(defaults, name), *grids[name]) for name in order}

    def valid(c: dict) -> bool:  # the pipeline refuses late-interaction weights that are all 0
        if c["rerank"] != "late-interaction":
            return True
        return any(c[w] for w in LATE) and (LATE_LONG[0] not in c or any(c[w] for w in LATE_LONG))

    def relevant(c: dict, name: str) -> bool:
        if name == "fusion_dense":
            return c["fusion"] == "zscore"
        return name not in LATE + LATE_LONG or c["rerank"] == "late-interaction"

    return SearchSpace(values, valid, relevant)


class TrialRunner:
    """Labelled queries answered on one snapshot under any stage configuration, as `/retrieve` would answer them,
    each configuration once: its per-query scores and mean metrics are kept. The pipeline reads the snapshot through
    a store that remembers (the snapshot cannot change), with no answer cache and no tenant profile in the way."""

    def __init__(self, searcher: SnapshotSearcher, tenant: str, snapshot: str, queries: dict[str, str],
                 qrels: dict[str, dict[str, int]], ks: Sequence[int], metric: str = "ndcg@10",
                 on_trial=None, exclude: dict[str, frozenset[str]] | None = None) -> None:
        pipeline = searcher.pipeline
        self.searcher = SnapshotSearcher(searcher.resolver, pipeline.with_store(MemoStore(pipeline.store)),
                                         ResultCache(0, 0))
        self.tenant, self.snapshot, self.metric = tenant, snapshot, metric
        self.qids = sorted(q for q in qrels if q in queries)
        self.queries, self.qrels = queries, qrels
        self.ks = tuple(ks)
        self.depth = max(*self.ks, 10)
        self.on_trial = on_trial
        self.exclude = exclude or {}  # query id -> chunk hashes its ranking leaves out (held-out sentences)
        self.per_query: dict[str, dict[str, np.ndarray]] = {}  # config key -> metric -> per-query scores
        self.means: dict[str, dict[str, float]] = {}

    def run(self, config: dict) -> dict[str, np.ndarray]:
        key = config_key(config)
        if key not in self.per_query:
            profile = Profile(self.tenant, 0, dict(config))
            ranking = {}
            for qid in self.qids:
                answer = self.searcher.search(self.tenant, self.queries[qid], self.depth, snapshot=self.snapshot,
                                              use_cache=False, profile=profile, group_by=EVAL_GROUP_BY)
                hits = answer.hits
                if qid in self.exclude:
                    # Without the held-out chunk each document ranks by its best remaining chunk.
                    hits = sorted((h for h in hits if h.payload.get("chunk_hash") not in self.exclude[qid]),
                                  key=lambda h: -h.score)
                ranking[qid] = doc_ranking([h.payload["doc_ids"] for h in hits])
            means, per_query = evaluate({q: self.qrels[q] for q in self.qids}, ranking, ks=self.ks)
            by_id = {r.query_id: r.metrics for r in per_query}
            self.per_query[key] = {m: np.array([by_id[q][m] for q in self.qids]) for m in means}
            self.means[key] = means
            if self.on_trial:
                self.on_trial(len(self.per_query))
        return self.per_query[key]

    def long_share(self) -> float:
        """The share of the queries past the long-query threshold of the service's defaults."""
        threshold = self.searcher.pipeline.defaults.late_long_tokens
        if not threshold or not self.qids:
            return 0.0
        tokens = self.searcher.pipeline.embedder.count_tokens([self.queries[q] for q in self.qids])
        return sum(t > threshold for t in tokens) / len(tokens)

    def __call__(self, config: dict) -> np.ndarray:
        """Per-query scores of the metric being tuned: what the search and the cross-validation read."""
        return self.run(config)[self.metric]

    def metrics(self, config: dict) -> dict[str, float]:
        self.run(config)
        return self.means[config_key(config)]


@dataclass
class ProfileTuner:
    searcher: SnapshotSearcher
    manifest: Manifest
    evals: EvalStore
    profiles: ProfileStore
    ks: Sequence[int] = (1, 5, 10, 20, 100)
    progress_every_s: float = 1.0
    catalog: Catalog | None = None  # the tenant's documents, which tuning without labels makes its queries from

    @property
    def depth(self) -> int:
        return max(*self.ks, 10)

    def check(self, tenant: str, request: TuningRequest) -> None:
        """What can be refused before a run is queued; ValueError / LookupError name the problem."""
        known = metric_names(self.ks)
        if request.metric not in known:
            raise InvalidInput(f"metric {request.metric!r} is not one evaluation computes; known: {', '.join(known)}")
        if not 2 <= request.folds <= 20:
            raise InvalidInput(f"folds={request.folds} is out of range [2, 20]")
        if not 0.5 < request.level < 1:
            raise InvalidInput(f"level={request.level} is out of range (0.5, 1)")
        self._queries(tenant, request)
        if self.manifest.live(tenant) is None:
            raise Conflict(f"tenant {tenant} has no live snapshot to tune on yet: ingest documents first")

    def _synthetic(self, tenant: str, request: TuningRequest) -> SyntheticSet:
        """Queries made from the tenant's indexed documents (titles, headings, held-out sentences)."""
        if self.catalog is None:
            raise ValueError("tuning without labels needs the catalog of the tenant's documents")
        docs = []
        for d in self.catalog.documents(tenant):
            spans = d.spans()
            if spans and d.text:
                chunks = [(c.hash, d.text[c.start:c.end], c.headings) for c in spans]
            else:  # chunked before offsets were recorded: the chunks' own texts, no headings
                rows = self.catalog.chunks(tenant, d.chunk_hashes)
                chunks = [(h, rows[h].text, ()) for h in d.chunk_hashes if h in rows]
            docs.append(SourceDocument(d.doc_id, d.title, chunks))
        made = synthetic_queries(docs, SYNTHETIC_PER_KIND, request.seed)
        if len(made.queries) < max(MIN_QUERIES, request.folds):
            raise InvalidInput(f"tuning without labels needs at least {max(MIN_QUERIES, request.folds)} queries made "
                             f"from the documents; tenant {tenant}'s gave {len(made.queries)} ({made.counts()})")
        return made

    def _queries(self, tenant: str, request: TuningRequest) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        if request.synthetic:
            made = self._synthetic(tenant, request)
            return made.queries, made.qrels
        sets = self.evals.active_sets(tenant)
        if request.query_sets:
            missing = sorted(set(request.query_sets) - {s.name for s in sets})
            if missing:
                raise InvalidInput(f"tenant {tenant} has no active query set {missing[0]!r}")
            sets = [s for s in sets if s.name in request.query_sets]
        if not sets:
            raise InvalidInput(f"tenant {tenant} has no labelled query set: upload one with POST /eval/query-sets "
                               "(without one, the tenant is served the global default)")
        queries, qrels = {}, {}
        for s in sets:
            for q in self.evals.queries(s.id):
                queries[f"{s.name}/{q.id}"] = q.text
                qrels[f"{s.name}/{q.id}"] = q.relevant
        if len(queries) < max(MIN_QUERIES, request.folds):
            raise InvalidInput(f"tuning needs at least {max(MIN_QUERIES, request.folds)} labelled queries; tenant "
                               f"{tenant} has {len(queries)} in {', '.join(s.name for s in sets)}")
        return queries, qrels

    def run(self, tenant: str, tuning_id: str) -> dict:
        """Tune, record the profile (live if it passed), and return the result stored with the tuning run."""
        tuning = self.profiles.tuning(tenant, tuning_id)
        if tuning is None:
            raise KeyError(f"tuning run {tuning_id} of tenant {tenant} does not exist")
        if tuning.status == "done":  # a redelivered message: the run is recorded already
            return tuning.result or {}
        self.profiles.start_tuning(tuning_id)
        try:
            result = self._tune(tenant, tuning_id, TuningRequest.from_dict(tuning.request))
        except BaseException as e:
            self.profiles.fail_tuning(tuning_id, f"{type(e).__name__}: {e}")
            raise
        return result

    def _tune(self, tenant: str, tuning_id: str, request: TuningRequest) -> dict:
        started = time.perf_counter()
        exclude: dict[str, frozenset[str]] = {}
        if request.synthetic:
            made = self._synthetic(tenant, request)
            queries, qrels, exclude = made.queries, made.qrels, made.exclude
        else:
            queries, qrels = self._queries(tenant, request)
        live = self.manifest.live(tenant)
        if live is None:
            raise LookupError(f"tenant {tenant} has no live snapshot to tune on")
        progress = {"queries": len(queries), "folds": request.folds, "folds_done": 0, "configurations": 0}
        last = [0.0]

        def report(force: bool = False) -> None:
            if force or time.monotonic() - last[0] >= self.progress_every_s:
                self.profiles.tuning_progress(tuning_id, progress)
                last[0] = time.monotonic()

        def tried(n: int) -> None:
            progress["configurations"] = n
            report()

        trials = TrialRunner(self.searcher, tenant, live.hash, queries, qrels, self.ks, request.metric, tried,
                             exclude)
        pipeline = self.searcher.pipeline
        space = search_space(pipeline.defaults, list(pipeline.rerankers), list(pipeline.rewriters),
                             long_queries=trials.long_share() >= LONG_SHARE)
        current_profile = self.profiles.live(tenant)
        default_cfg = space.start(vars(pipeline.defaults))
        current_cfg = space.start({**vars(pipeline.defaults), **current_profile.params})

        def fold_done(n: int) -> None:
            progress["folds_done"] = n
            report(force=True)

        cv = cross_validate(trials, len(trials.qids), current_cfg, space, folds=request.folds, seed=request.seed,
                            on_fold=fold_done)
        current, default = trials(current_cfg), trials(default_cfg)
        test = paired_bootstrap(cv.heldout, current, level=request.level, seed=request.seed)
        final = cv.final
        changed = config_key(final) != config_key(current_cfg)
        adopt = changed and test.better
        if not changed:
            reason = f"the search on every query chose the live profile (v{current_profile.version}) again"
        elif adopt:
            reason = (f"held-out {request.metric} {cv.heldout.mean():.4f} against {current.mean():.4f} for the live "
                      f"profile v{current_profile.version}: gain {test.mean:+.4f}, {test.level:.0%} interval "
                      f"[{test.low:+.4f}, {test.high:+.4f}] above zero")
        else:
            reason = (f"not adopted: held-out {request.metric} {cv.heldout.mean():.4f} against {current.mean():.4f} "
                      f"for the live profile v{current_profile.version}, gain {test.mean:+.4f} with a "
                      f"{test.level:.0%} interval [{test.low:+.4f}, {test.high:+.4f}] that does not clear zero")
        scores = {
            "metric": request.metric, "queries": len(trials.qids), "folds": request.folds, "seed": request.seed,
            "synthetic": made.counts() if request.synthetic else None,
            "tuned_cv": float(cv.heldout.mean()),            # held-out: each fold scored by what the others chose
            "tuned_in_sample": float(trials(final).mean()),   # the adopted parameters on every query (optimistic)
            "live": float(current.mean()), "live_version": current_profile.version,
            "default": float(default.mean()),
            "test": test.as_dict(),
            "folds_chosen": cv.chosen,
        }
        progress["folds_done"] = request.folds
        report(force=True)
        profile = None
        if changed:
            profile = self.profiles.record(tenant, final, scores, reason, tuning_id, adopt=adopt)
        seconds = round(time.perf_counter() - started, 1)
        result = {"decision": "adopted" if adopt else "unchanged" if not changed else "rejected", "reason": reason,
                  "params": final, "scores": scores, "snapshot": live.hash, "seconds": seconds,
                  "configurations": len(trials.per_query),
                  "profile": profile.version if profile else current_profile.version}
        self.profiles.finish_tuning(tuning_id, result, profile.version if profile else None)
        log.info("tuned %s on %d queries in %.1f s: %s", tenant, len(trials.qids), seconds, reason)
        return result
