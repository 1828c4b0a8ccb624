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

from eval.metrics import QueryResult
from ingest.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS query_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    description TEXT,
    queries INTEGER NOT NULL,
    created_at REAL NOT NULL,
    retired_at REAL,                   -- no longer run after builds; its history stays
    UNIQUE (tenant, name, version)
);
CREATE TABLE IF NOT EXISTS query_set_items (
    set_id INTEGER NOT NULL REFERENCES query_sets(id),
    position INTEGER NOT NULL,
    qid TEXT NOT NULL,
    text TEXT NOT NULL,
    relevant TEXT NOT NULL,            -- JSON {doc_id: grade}
    PRIMARY KEY (set_id, qid)
);
CREATE TABLE IF NOT EXISTS eval_runs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    set_id INTEGER NOT NULL REFERENCES query_sets(id),
    recipe_key TEXT NOT NULL,
    recipe TEXT NOT NULL,
    trigger TEXT NOT NULL,             -- build | upload | manual | baseline | profile
    status TEXT NOT NULL,              -- running | done | failed
    created_at REAL NOT NULL,
    finished_at REAL,
    seconds REAL,
    queries INTEGER,
    metrics TEXT,
    latency_ms TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS eval_runs_by_snapshot ON eval_runs (tenant, snapshot, set_id);
CREATE TABLE IF NOT EXISTS eval_results (
    run_id TEXT NOT NULL REFERENCES eval_runs(id),
    qid TEXT NOT NULL,
    metrics TEXT NOT NULL,
    ranks TEXT NOT NULL,               -- JSON {relevant doc id: 1-based rank or null}
    retrieved TEXT NOT NULL,           -- JSON [doc id, ...], the top RETRIEVED_KEPT
    PRIMARY KEY (run_id, qid)
);
CREATE TABLE IF NOT EXISTS gate_verdicts (
    tenant TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    decided_at REAL NOT NULL,
    passed INTEGER NOT NULL,
    baseline TEXT,                     -- the live snapshot it was compared with
    reasons TEXT NOT NULL,
    checks TEXT NOT NULL,
    runs TEXT NOT NULL,
    override_at REAL,                  -- an operator promoted it although it failed
    PRIMARY KEY (tenant, snapshot)
);
"""

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
        raise ValueError(f"query set name {name!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
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
        db.executescript(SCHEMA)

    # --- query sets -------------------------------------------------------------------------

    def put_query_set(self, tenant: str, name: str, queries: list[LabelledQuery],
                      description: str | None = None) -> tuple[QuerySetRef, bool]:
        """Store a version of a set; returns (version, created). The same content as the newest version is not
        a new version; anything else is, and every earlier version stays."""
        check_name(name)
        if not queries:
            raise ValueError(f"query set {name!r} has no queries")
        dupes = sorted(i for i, n in Counter(q.id for q in queries).items() if n > 1)  # one pass, not n^2
        if dupes:
            raise ValueError(f"query ids repeat in query set {name!r}: {dupes[:10]}")
        digest = checksum(queries)
        with self.db.tx() as conn:
            latest = conn.execute("SELECT * FROM query_sets WHERE tenant = ? AND name = ? ORDER BY version DESC"
                                  " LIMIT 1", (tenant, name)).fetchone()
            if latest is not None and latest["checksum"] == digest and latest["retired_at"] is None:
                return self._set(latest), False
            version = latest["version"] + 1 if latest else 1
            cur = conn.execute(
                "INSERT INTO query_sets (tenant, name, version, checksum, description, queries, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (tenant, name, version, digest, description, len(queries), time.time()))
            set_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO query_set_items (set_id, position, qid, text, relevant) VALUES (?, ?, ?, ?, ?)",
                [(set_id, i, q.id, q.text, json.dumps(q.relevant)) for i, q in enumerate(queries)])
            row = conn.execute("SELECT * FROM query_sets WHERE id = ?", (set_id,)).fetchone()
        return self._set(row), True

    def _set(self, r) -> QuerySetRef:
        return QuerySetRef(r["id"], r["tenant"], r["name"], r["version"], r["checksum"], r["description"],
                           r["queries"], r["created_at"], r["retired_at"])

    def query_set(self, tenant: str, name: str, version: int | None = None) -> QuerySetRef | None:
        sql = "SELECT * FROM query_sets WHERE tenant = ? AND name = ?"
        args: tuple = (tenant, name)
        if version is not None:
            sql, args = sql + " AND version = ?", (*args, version)
        r = self.db.conn().execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()
        return self._set(r) if r else None

    def query_set_by_id(self, set_id: int) -> QuerySetRef | None:
        r = self.db.conn().execute("SELECT * FROM query_sets WHERE id = ?", (set_id,)).fetchone()
        return self._set(r) if r else None

    def query_sets(self, tenant: str) -> list[QuerySetRef]:
        """Every version of every set, by name then version."""
        rows = self.db.conn().execute("SELECT * FROM query_sets WHERE tenant = ? ORDER BY name, version", (tenant,))
        return [self._set(r) for r in rows]

    def active_sets(self, tenant: str) -> list[QuerySetRef]:
        """The newest version of each set that is not retired: what runs after every build."""
        rows = self.db.conn().execute(
            "SELECT q.* FROM query_sets q JOIN (SELECT name, MAX(version) AS v FROM query_sets WHERE tenant = ?"
            " GROUP BY name) m ON q.name = m.name AND q.version = m.v WHERE q.tenant = ? AND q.retired_at IS NULL"
            " ORDER BY q.name", (tenant, tenant))
        return [self._set(r) for r in rows]

    def retire(self, tenant: str, name: str) -> QuerySetRef:
        latest = self.query_set(tenant, name)
        if latest is None:
            raise KeyError(f"tenant {tenant} has no query set {name!r}")
        with self.db.tx() as conn:
            conn.execute("UPDATE query_sets SET retired_at = COALESCE(retired_at, ?) WHERE tenant = ? AND name = ?",
                         (time.time(), tenant, name))
        return self.query_set(tenant, name)

    def queries(self, set_id: int) -> list[LabelledQuery]:
        rows = self.db.conn().execute("SELECT qid, text, relevant FROM query_set_items WHERE set_id = ?"
                                      " ORDER BY position", (set_id,))
        return [LabelledQuery(r["qid"], r["text"], json.loads(r["relevant"])) for r in rows]

    # --- runs -------------------------------------------------------------------------------------

    def start_run(self, tenant: str, snapshot: str, set_id: int, recipe: dict, trigger: str) -> str:
        run_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO eval_runs (id, tenant, snapshot, set_id, recipe_key, recipe, trigger, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (run_id, tenant, snapshot, set_id, recipe_key(recipe), json.dumps(recipe, sort_keys=True, default=str),
                 trigger, time.time()))
        return run_id

    def finish_run(self, run_id: str, metrics: dict[str, float], latency_ms: dict[str, float],
                   per_query: list[QueryResult], seconds: float) -> None:
        with self.db.tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO eval_results (run_id, qid, metrics, ranks, retrieved) VALUES (?, ?, ?, ?, ?)",
                [(run_id, r.query_id, json.dumps(r.metrics), json.dumps(r.ranks), json.dumps(r.retrieved[:RETRIEVED_KEPT]))
                 for r in per_query])
            conn.execute(
                "UPDATE eval_runs SET status = 'done', finished_at = ?, seconds = ?, queries = ?, metrics = ?,"
                " latency_ms = ? WHERE id = ?",
                (time.time(), seconds, len(per_query), json.dumps(metrics), json.dumps(latency_ms), run_id))

    def fail_run(self, run_id: str, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE eval_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                         (time.time(), error, run_id))

    _RUN_SQL = ("SELECT r.*, q.name AS set_name, q.version AS set_version FROM eval_runs r"
                " JOIN query_sets q ON q.id = r.set_id")

    def _run(self, r) -> RunRow:
        return RunRow(r["id"], r["tenant"], r["snapshot"], r["set_id"], r["set_name"], r["set_version"],
                      r["recipe_key"], json.loads(r["recipe"]), r["trigger"], r["status"], r["created_at"],
                      r["finished_at"], r["seconds"], r["queries"], json.loads(r["metrics"] or "{}"),
                      json.loads(r["latency_ms"] or "{}"), r["error"])

    def run(self, tenant: str, run_id: str) -> RunRow | None:
        r = self.db.conn().execute(self._RUN_SQL + " WHERE r.tenant = ? AND r.id = ?", (tenant, run_id)).fetchone()
        return self._run(r) if r else None

    def runs(self, tenant: str, snapshot: str | None = None, set_name: str | None = None,
             status: str | None = None, limit: int | None = None) -> list[RunRow]:
        """Newest first."""
        sql, args = self._RUN_SQL + " WHERE r.tenant = ?", [tenant]
        for column, value in (("r.snapshot", snapshot), ("q.name", set_name), ("r.status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        sql += " ORDER BY r.created_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._run(r) for r in self.db.conn().execute(sql, args)]

    def finished_run(self, tenant: str, snapshot: str, set_id: int, recipe: dict | None = None) -> RunRow | None:
        """The newest finished run of this set version on this snapshot (under this recipe, when given)."""
        sql = self._RUN_SQL + " WHERE r.tenant = ? AND r.snapshot = ? AND r.set_id = ? AND r.status = 'done'"
        args: list = [tenant, snapshot, set_id]
        if recipe is not None:
            sql += " AND r.recipe_key = ?"
            args.append(recipe_key(recipe))
        r = self.db.conn().execute(sql + " ORDER BY r.created_at DESC LIMIT 1", args).fetchone()
        return self._run(r) if r else None

    def results(self, run_id: str) -> list[QueryResult]:
        rows = self.db.conn().execute("SELECT * FROM eval_results WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [QueryResult(r["qid"], json.loads(r["metrics"]), json.loads(r["ranks"]), json.loads(r["retrieved"]))
                for r in rows]

    # --- gate verdicts ----------------------------------------------------------------------------

    def put_verdict(self, tenant: str, snapshot: str, verdict: Verdict) -> Verdict:
        now = time.time()
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO gate_verdicts (tenant, snapshot, decided_at, passed, baseline, reasons, checks,"
                " runs, override_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (tenant, snapshot, now, int(verdict.passed), verdict.baseline, json.dumps(verdict.reasons),
                 json.dumps(verdict.checks), json.dumps(verdict.runs)))
        return self.verdict(tenant, snapshot)

    def _verdict(self, r) -> Verdict:
        return Verdict(bool(r["passed"]), json.loads(r["reasons"]), json.loads(r["checks"]), json.loads(r["runs"]),
                       r["baseline"], r["decided_at"], r["override_at"])

    def verdict(self, tenant: str, snapshot: str) -> Verdict | None:
        r = self.db.conn().execute("SELECT * FROM gate_verdicts WHERE tenant = ? AND snapshot = ?",
                                   (tenant, snapshot)).fetchone()
        return self._verdict(r) if r else None

    def verdicts(self, tenant: str) -> dict[str, Verdict]:
        rows = self.db.conn().execute("SELECT * FROM gate_verdicts WHERE tenant = ?", (tenant,))
        return {r["snapshot"]: self._verdict(r) for r in rows}

    def record_override(self, tenant: str, snapshot: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE gate_verdicts SET override_at = ? WHERE tenant = ? AND snapshot = ?",
                         (time.time(), tenant, snapshot))
