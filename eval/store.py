"""Labelled query sets, evaluation runs and gate verdicts, kept in the catalog database beside the manifest.

Query sets are versioned: uploading a set under a name that exists adds a version (or returns the latest one
when the content is the same); earlier versions and every run made with them stay. A run is one query set
version scored on one snapshot under one retrieval recipe; its per-query rows keep the rank of each relevant
document and what came first instead, for the drill-down.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from db.engine import Database
from db.tables import eval_results, eval_runs, gate_verdicts, query_set_items, query_sets
from errors import InvalidInput, NotFound
from eval.metrics import QueryResult

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RETRIEVED_KEPT = 20  # enough for "what came first instead" at every cutoff up to 20


@dataclass(frozen=True)
class LabelledQuery:
    id: str
    text: str
    relevant: dict[str, int]  # doc id -> grade >= 1


@dataclass(frozen=True)
class QuerySetRef:
    id: int
    tenant: str
    name: str
    version: int
    checksum: str
    description: str | None
    queries: int
    created_at: float
    retired_at: float | None
    principal: dict | None = None  # {"user", "groups"}: run as this principal sees the index


@dataclass
class RunRow:
    id: str
    tenant: str
    snapshot: str
    set_id: int
    set_name: str
    set_version: int
    recipe_key: str
    recipe: dict
    trigger: str
    status: str
    created_at: float
    finished_at: float | None
    seconds: float | None
    queries: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]
    checks: list[dict]
    runs: list[str]
    baseline: str | None = None
    decided_at: float = 0.0
    override_at: float | None = None

    @property
    def judged(self) -> bool:
        """False when the evaluation could not run: the hold says nothing about the snapshot's quality."""
        return self.passed or bool(self.checks)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(f"query set name {name!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return name


def checksum(queries: list[LabelledQuery]) -> str:
    body = sorted([q.id, q.text, sorted(q.relevant.items())] for q in queries)
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def recipe_key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


class EvalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- query sets -------------------------------------------------------------------------

    def put_query_set(self, tenant: str, name: str, queries: list[LabelledQuery],
                      description: str | None = None, principal: dict | None = None) -> tuple[QuerySetRef, bool]:
        """Store a version of a set; returns (version, created). The same content as the newest version is not
        a new version; anything else is, and every earlier version stays."""
        check_name(name)
        if not queries:
            raise InvalidInput(f"query set {name!r} has no queries")
        dupes = sorted(i for i, n in Counter(q.id for q in queries).items() if n > 1)  # one pass, not n^2
        if dupes:
            raise InvalidInput(f"query ids repeat in query set {name!r}: {dupes[:10]}")
        digest = checksum(queries)
        if principal is not None:  # another principal is another set of answers: a new version
            digest = hashlib.sha256(json.dumps([digest, principal], sort_keys=True).encode()).hexdigest()
        q = query_sets.c
        with self.db.tx() as conn:
            self.db.lock(conn, "query_set", tenant, name)  # the next version number is read, then written
            latest = self.db.first(select(query_sets).where(q.tenant == tenant, q.name == name)
                                   .order_by(q.version.desc()).limit(1), conn)
            if latest is not None and latest["checksum"] == digest and latest["retired_at"] is None:
                return self._set(latest), False
            version = latest["version"] + 1 if latest else 1
            set_id = conn.execute(query_sets.insert().values(
                tenant=tenant, name=name, version=version, checksum=digest, description=description,
                queries=len(queries), created_at=time.time(),
                principal=None if principal is None else json.dumps(principal, sort_keys=True))).inserted_primary_key[0]
            conn.execute(query_set_items.insert(), [
                {"set_id": set_id, "position": i, "qid": x.id, "text": x.text, "relevant": json.dumps(x.relevant)}
                for i, x in enumerate(queries)])
            row = self.db.first(select(query_sets).where(q.id == set_id), conn)
        return self._set(row), True

    def _set(self, r) -> QuerySetRef:
        return QuerySetRef(r["id"], r["tenant"], r["name"], r["version"], r["checksum"], r["description"],
                           r["queries"], r["created_at"], r["retired_at"],
                           json.loads(r["principal"]) if r.get("principal") else None)

    def query_set(self, tenant: str, name: str, version: int | None = None) -> QuerySetRef | None:
        q = query_sets.c
        stmt = select(query_sets).where(q.tenant == tenant, q.name == name)
        if version is not None:
            stmt = stmt.where(q.version == version)
        r = self.db.first(stmt.order_by(q.version.desc()).limit(1))
        return self._set(r) if r else None

    def query_set_by_id(self, set_id: int) -> QuerySetRef | None:
        r = self.db.first(select(query_sets).where(query_sets.c.id == set_id))
        return self._set(r) if r else None

    def query_sets(self, tenant: str) -> list[QuerySetRef]:
        """Every version of every set, by name then version."""
        q = query_sets.c
        return [self._set(r) for r in self.db.all(select(query_sets).where(q.tenant == tenant)
                                                   .order_by(q.name, q.version))]

    def active_sets(self, tenant: str) -> list[QuerySetRef]:
        """The newest version of each set that is not retired: what runs after every build."""
        q = query_sets.c
        newest = (select(q.name, func.max(q.version).label("v")).where(q.tenant == tenant)
                  .group_by(q.name).subquery())
        stmt = (select(query_sets).join(newest, (q.name == newest.c.name) & (q.version == newest.c.v))
                .where(q.tenant == tenant, q.retired_at.is_(None)).order_by(q.name))
        return [self._set(r) for r in self.db.all(stmt)]

    def retire(self, tenant: str, name: str) -> QuerySetRef:
        latest = self.query_set(tenant, name)
        if latest is None:
            raise NotFound(f"tenant {tenant} has no query set {name!r}")
        q = query_sets.c
        with self.db.tx() as conn:
            conn.execute(update(query_sets).where(q.tenant == tenant, q.name == name)
                         .values(retired_at=func.coalesce(q.retired_at, time.time())))
        return self.query_set(tenant, name)

    def queries(self, set_id: int) -> list[LabelledQuery]:
        i = query_set_items.c
        rows = self.db.all(select(i.qid, i.text, i.relevant).where(i.set_id == set_id).order_by(i.position))
        return [LabelledQuery(r["qid"], r["text"], json.loads(r["relevant"])) for r in rows]

    # --- runs -------------------------------------------------------------------------------------

    def start_run(self, tenant: str, snapshot: str, set_id: int, recipe: dict, trigger: str) -> str:
        run_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute(eval_runs.insert().values(
                id=run_id, tenant=tenant, snapshot=snapshot, set_id=set_id, recipe_key=recipe_key(recipe),
                recipe=json.dumps(recipe, sort_keys=True, default=str), trigger=trigger, status="running",
                created_at=time.time()))
        return run_id

    def finish_run(self, run_id: str, metrics: dict[str, float], latency_ms: dict[str, float],
                   per_query: list[QueryResult], seconds: float) -> None:
        with self.db.tx() as conn:
            conn.execute(eval_results.delete().where(eval_results.c.run_id == run_id))
            if per_query:
                conn.execute(eval_results.insert(), [
                    {"run_id": run_id, "qid": r.query_id, "metrics": json.dumps(r.metrics),
                     "ranks": json.dumps(r.ranks), "retrieved": json.dumps(r.retrieved[:RETRIEVED_KEPT]), "position": i}
                    for i, r in enumerate(per_query)])
            conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(
                status="done", finished_at=time.time(), seconds=seconds, queries=len(per_query),
                metrics=json.dumps(metrics), latency_ms=json.dumps(latency_ms)))

    def fail_run(self, run_id: str, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(eval_runs).where(eval_runs.c.id == run_id)
                         .values(status="failed", finished_at=time.time(), error=error))

    def _runs(self):
        return (select(eval_runs, query_sets.c.name.label("set_name"), query_sets.c.version.label("set_version"))
                .join(query_sets, query_sets.c.id == eval_runs.c.set_id))

    def _run(self, r) -> RunRow:
        return RunRow(r["id"], r["tenant"], r["snapshot"], r["set_id"], r["set_name"], r["set_version"],
                      r["recipe_key"], json.loads(r["recipe"]), r["trigger"], r["status"], r["created_at"],
                      r["finished_at"], r["seconds"], r["queries"], json.loads(r["metrics"] or "{}"),
                      json.loads(r["latency_ms"] or "{}"), r["error"])

    def run(self, tenant: str, run_id: str) -> RunRow | None:
        r = self.db.first(self._runs().where(eval_runs.c.tenant == tenant, eval_runs.c.id == run_id))
        return self._run(r) if r else None

    def runs(self, tenant: str, snapshot: str | None = None, set_name: str | None = None,
             status: str | None = None, limit: int | None = None) -> list[RunRow]:
        """Newest first."""
        stmt = self._runs().where(eval_runs.c.tenant == tenant)
        for column, value in ((eval_runs.c.snapshot, snapshot), (query_sets.c.name, set_name),
                              (eval_runs.c.status, status)):
            if value is not None:
                stmt = stmt.where(column == value)
        stmt = stmt.order_by(eval_runs.c.created_at.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        return [self._run(r) for r in self.db.all(stmt)]

    def finished_run(self, tenant: str, snapshot: str, set_id: int, recipe: dict | None = None) -> RunRow | None:
        """The newest finished run of this set version on this snapshot (under this recipe, when given)."""
        r = eval_runs.c
        stmt = self._runs().where(r.tenant == tenant, r.snapshot == snapshot, r.set_id == set_id, r.status == "done")
        if recipe is not None:
            stmt = stmt.where(r.recipe_key == recipe_key(recipe))
        row = self.db.first(stmt.order_by(r.created_at.desc()).limit(1))
        return self._run(row) if row else None

    def results(self, run_id: str) -> list[QueryResult]:
        e = eval_results.c
        rows = self.db.all(select(eval_results).where(e.run_id == run_id).order_by(e.position, e.qid))
        return [QueryResult(r["qid"], json.loads(r["metrics"]), json.loads(r["ranks"]), json.loads(r["retrieved"]))
                for r in rows]

    # --- gate verdicts ----------------------------------------------------------------------------

    def put_verdict(self, tenant: str, snapshot: str, verdict: Verdict) -> Verdict:
        with self.db.tx() as conn:
            self.db.replace(conn, gate_verdicts, {
                "tenant": tenant, "snapshot": snapshot, "decided_at": time.time(), "passed": bool(verdict.passed),
                "baseline": verdict.baseline, "reasons": json.dumps(verdict.reasons),
                "checks": json.dumps(verdict.checks), "runs": json.dumps(verdict.runs), "override_at": None})
        return self.verdict(tenant, snapshot)

    def _verdict(self, r) -> Verdict:
        return Verdict(bool(r["passed"]), json.loads(r["reasons"]), json.loads(r["checks"]), json.loads(r["runs"]),
                       r["baseline"], r["decided_at"], r["override_at"])

    def verdict(self, tenant: str, snapshot: str) -> Verdict | None:
        g = gate_verdicts.c
        r = self.db.first(select(gate_verdicts).where(g.tenant == tenant, g.snapshot == snapshot))
        return self._verdict(r) if r else None

    def verdicts(self, tenant: str) -> dict[str, Verdict]:
        rows = self.db.all(select(gate_verdicts).where(gate_verdicts.c.tenant == tenant))
        return {r["snapshot"]: self._verdict(r) for r in rows}

    def record_override(self, tenant: str, snapshot: str) -> None:
        g = gate_verdicts.c
        with self.db.tx() as conn:
            conn.execute(update(gate_verdicts).where(g.tenant == tenant, g.snapshot == snapshot)
                         .values(override_at=time.time()))
