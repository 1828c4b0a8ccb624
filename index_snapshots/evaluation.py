"""Scoring snapshots on the tenant's labelled query sets, and the gate that decides whether a built snapshot may
go live.

Every run goes through SnapshotSearcher, the code `/retrieve` runs, with the service's default stages: what is
measured is what is served. A run is kept per (snapshot, query set version, recipe); since snapshots never
change, a finished run is reused instead of repeated until the retrieval recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Sequence

from errors import NotFound
from eval.gate import GatePolicy, SetOutcome, judge
from eval.metrics import drilldown
from eval.runner import run_queries
from eval.store import EvalStore, QuerySetRef, RunRow, Verdict, recipe_key
from index_snapshots.manifest import Manifest
from index_snapshots.querying import SnapshotSearcher
from index_snapshots.resolve import READABLE
from ingest.access import Reader
from notify import emit

log = logging.getLogger(__name__)
# Labelled queries name documents, so runs rank documents: 100 results are 100 documents, not the documents that
# 100 chunks happen to hold (a document of several chunks would take several places).
EVAL_GROUP_BY = "document"


@dataclass
class SnapshotEvaluator:
    searcher: SnapshotSearcher
    manifest: Manifest
    store: EvalStore
    policy: GatePolicy
    ks: Sequence[int] = (1, 5, 10, 20, 100)
    deny_by_default: frozenset[str] = frozenset()  # tenants whose documents without an access list are admin-only

    @property
    def depth(self) -> int:
        # Ranked documents needed by the deepest cutoff (and by MRR@10 / nDCG@10).
        return max(*self.ks, 10)

    def recipe(self, tenant: str) -> dict:
        """The tenant's retrieval recipe, its profile included: a run is reused only under the same one."""
        return {**self.searcher.recipe(tenant), "eval": {"ks": list(self.ks), "depth": self.depth,
                                                         "group_by": EVAL_GROUP_BY}}

    def evaluate(self, tenant: str, snapshot: str, query_set: QuerySetRef, trigger: str = "manual",
                 reuse: bool = True) -> RunRow:
        """Score one query set version on one snapshot; a finished run under the same recipe is reused."""
        recipe = self.recipe(tenant)
        if reuse and (done := self.store.finished_run(tenant, snapshot, query_set.id, recipe)) is not None:
            return done
        labelled = self.store.queries(query_set.id)
        queries = {q.id: q.text for q in labelled}
        qrels = {q.id: q.relevant for q in labelled}
        run_id = self.store.start_run(tenant, snapshot, query_set.id, recipe, trigger)
        started = time.perf_counter()
        # A set naming a principal measures recall as that user sees the index (and its drill-down lists only the
        # documents they may read).
        p = query_set.principal
        reader = Reader.of(p.get("user"), p.get("groups"), tenant not in self.deny_by_default) if p else None
        try:
            def search(text: str):
                answer = self.searcher.search(tenant, text, self.depth, snapshot=snapshot, use_cache=False,
                                              reader=reader, group_by=EVAL_GROUP_BY)
                return [h.payload["doc_ids"] for h in answer.hits]

            result = run_queries(f"{query_set.name} v{query_set.version}", search, queries, qrels, ks=self.ks)
        except BaseException as e:
            self.store.fail_run(run_id, f"{type(e).__name__}: {e}")
            raise
        self.store.finish_run(run_id, result.metrics, result.latency_ms, result.per_query,
                              time.perf_counter() - started)
        log.info("evaluated snapshot %s of %s on %s v%d: %s", snapshot[:12], tenant, query_set.name,
                 query_set.version, {m: round(v, 4) for m, v in result.metrics.items() if m in self.policy.metrics})
        return self.store.run(tenant, run_id)

    def targets(self, tenant: str, set_name: str | None = None,
                snapshot: str | None = None) -> tuple[list[QuerySetRef], list[str]]:
        """The active query sets (or the one named) and the readable snapshots (or the one named) an evaluation
        request covers; LookupError names what does not exist."""
        sets = [s for s in self.store.active_sets(tenant) if set_name is None or s.name == set_name]
        if set_name is not None and not sets:
            raise NotFound(f"tenant {tenant} has no active query set {set_name!r}")
        snaps = [r.hash for r in self.manifest.list(tenant) if r.status in READABLE
                 and (snapshot is None or r.hash == snapshot)]
        if snapshot is not None and not snaps:
            raise NotFound(f"snapshot {snapshot} of tenant {tenant} is not readable ({', '.join(READABLE)})")
        return sets, snaps

    def evaluate_kept(self, tenant: str, set_name: str | None = None, snapshot: str | None = None,
                      trigger: str = "manual") -> list[RunRow]:
        """Score active query sets (or one) on one snapshot, or on every snapshot still readable: a set uploaded
        today gets a history over the snapshots that are kept, not a single point."""
        sets, snaps = self.targets(tenant, set_name, snapshot)
        runs = [self.evaluate(tenant, snap, s, trigger) for snap in snaps for s in sets]
        self.check_recall(tenant)  # a new query set, or a new profile, may show the live snapshot falling short
        return runs

    def gate(self, tenant: str, snapshot: str) -> Verdict:
        """Score the candidate (and the live snapshot, where a run under this recipe is missing) on every active
        query set, judge, and record the verdict."""
        live = self.manifest.live(tenant)
        baseline = live.hash if live is not None and live.hash != snapshot else None
        outcomes, runs = [], []
        for query_set in self.store.active_sets(tenant):
            cand = self.evaluate(tenant, snapshot, query_set, trigger="build")
            base = self.evaluate(tenant, baseline, query_set, trigger="baseline") if baseline else None
            runs += [r.id for r in (cand, base) if r is not None]
            outcomes.append(SetOutcome(query_set.name, query_set.version, cand.metrics,
                                       base.metrics if base else None))
        j = judge(self.policy, outcomes)
        return self.store.put_verdict(tenant, snapshot, Verdict(j.passed, j.reasons, j.checks, runs, baseline))

    def recall_check(self, tenant: str):
        """The gate's own judgement applied to what is live now: the live snapshot's newest runs against the floors,
        and against the previous live snapshot's runs of the same set versions. None when nothing is live or scored."""
        live = self.manifest.live(tenant)
        if live is None:
            return None
        previous = self.manifest.previous(tenant)
        metrics = self.policy.metrics
        outcomes = []
        for query_set in self.store.active_sets(tenant):
            run = self.store.finished_run(tenant, live.hash, query_set.id)
            if run is None or any(m not in run.metrics for m in metrics):
                continue
            base = self.store.finished_run(tenant, previous, query_set.id) if previous else None
            baseline = base.metrics if base is not None and all(m in base.metrics for m in metrics) else None
            outcomes.append(SetOutcome(query_set.name, query_set.version, run.metrics, baseline))
        return (live.hash, previous, judge(self.policy, outcomes)) if outcomes else None

    def check_recall(self, tenant: str) -> str | None:
        """Emit recall.dropped when a gated metric of the live snapshot is below its floor or fell more than its
        tolerance against the previous live one (after an override or a rollback, or once a new query set scores
        it). Once per (live snapshot, failing checks). Never raises: a check is no reason to fail a switch."""
        try:
            found = self.recall_check(tenant)
            if found is None or found[2].passed:
                return None
            live, previous, j = found
            failing = [c for c in j.checks if not c["passed"]]
            key = hashlib.sha256(json.dumps([live, [(c["query_set"], c["version"], c["metric"]) for c in failing]])
                                 .encode()).hexdigest()[:32]
            db = self.manifest.db
            with db.tx() as conn:
                return emit(db, conn, tenant, "recall.dropped", {"snapshot": live, "previous": previous,
                                                                  "reasons": j.reasons, "checks": failing}, dedupe=key)
        except Exception:
            log.exception("recall check of %s failed", tenant)
            return None

    def verdict(self, tenant: str, snapshot: str) -> Verdict | None:
        return self.store.verdict(tenant, snapshot)

    def compare(self, tenant: str, base: str, candidate: str, set_name: str, version: int | None = None,
                metric: str = "recall@10") -> dict:
        """Per-query gains and losses between two snapshots' newest finished runs of one query set version."""
        query_set = self.store.query_set(tenant, set_name, version)
        if query_set is None:
            raise NotFound(f"tenant {tenant} has no query set {set_name!r}" + (f" v{version}" if version else ""))
        runs = self._comparable_runs(tenant, base, candidate, query_set)
        labelled = self.store.queries(query_set.id)
        changes = drilldown(self.store.results(runs["base"].id), self.store.results(runs["candidate"].id), metric,
                            {q.id: q.relevant for q in labelled})
        texts = {q.id: q.text for q in labelled}
        for entry in changes["gained"] + changes["lost"]:
            entry["text"] = texts.get(entry["query_id"], "")
        return {"query_set": query_set, "metric": metric, **runs, **changes}

    def _comparable_runs(self, tenant: str, base: str, candidate: str, query_set: QuerySetRef) -> dict[str, RunRow]:
        """The newest runs of both snapshots under one recipe (the current one first); the newest of each when
        they share none (the caller says they are not comparable)."""
        done = {snap: self.store.runs(tenant, snapshot=snap, status="done") for snap in (base, candidate)}
        done = {snap: [r for r in runs if r.set_id == query_set.id] for snap, runs in done.items()}
        for snap, runs in done.items():
            if not runs:
                raise NotFound(f"snapshot {snap[:12]} has no finished run of {query_set.name} v{query_set.version}")
        current = recipe_key(self.recipe(tenant))
        shared = {r.recipe_key for r in done[base]} & {r.recipe_key for r in done[candidate]}
        key = current if current in shared else next((r.recipe_key for r in done[candidate] if r.recipe_key in shared),
                                                      None)
        pick = {snap: next((r for r in runs if key is None or r.recipe_key == key)) for snap, runs in done.items()}
        return {"base": pick[base], "candidate": pick[candidate]}

    def overview(self, tenant: str) -> dict:
        """Everything the dashboard draws, from aggregates only (per-query rows load on drill-down)."""
        snapshots = self.manifest.list(tenant)
        verdicts = self.store.verdicts(tenant)
        current = recipe_key(self.recipe(tenant))
        series: dict[int, dict[str, RunRow]] = {}
        for run in reversed(self.store.runs(tenant, status="done")):  # oldest first: the newest run wins...
            kept = series.setdefault(run.set_id, {}).get(run.snapshot)
            if kept is None or run.recipe_key == current or kept.recipe_key != current:  # ...under today's recipe
                series[run.set_id][run.snapshot] = run
        return {"snapshots": snapshots, "verdicts": verdicts, "query_sets": self.store.query_sets(tenant),
                "series": series, "switches": self.manifest.switches(tenant), "recipe_key": current}

    def live_runs(self) -> list[tuple[str, str, RunRow]]:
        """(tenant, live snapshot, newest finished run) per active query set: what monitoring exports."""
        out = []
        for tenant in self.manifest.tenants():
            live = self.manifest.live(tenant)
            for query_set in self.store.active_sets(tenant):
                run = self.store.finished_run(tenant, live.hash, query_set.id)
                if run is not None:
                    out.append((tenant, live.hash, run))
        return out
