"""Retrieval profiles: a tenant's stage parameters, versioned like snapshots, and the tuning runs that propose them.

Version 0 is the service's global default (no row: whatever the settings say). A tuned profile records the full
set of parameters the tuner searched, so it means the same thing whatever the global default becomes. One version
is live per tenant; adopting one is one write of the live row in the same transaction that records it, and a
rollback switches back to the version live before, as snapshots do.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from ingest.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS retrieval_profiles (
    tenant TEXT NOT NULL,
    version INTEGER NOT NULL,
    params TEXT NOT NULL,              -- JSON {stage parameter: value}
    status TEXT NOT NULL,              -- live | retired | rejected
    scores TEXT NOT NULL,              -- JSON: cross-validated scores of it, of the live profile and of the default
    reason TEXT,                       -- why it was adopted, or not
    tuning_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, version)
);
CREATE TABLE IF NOT EXISTS profile_live (
    tenant TEXT PRIMARY KEY,
    version INTEGER NOT NULL,          -- 0: the global default
    previous INTEGER,
    switched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_switches (
    tenant TEXT NOT NULL,
    at REAL NOT NULL,
    from_version INTEGER,
    to_version INTEGER NOT NULL,
    action TEXT NOT NULL               -- adopt | rollback | manual
);
CREATE TABLE IF NOT EXISTS tuning_runs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    trigger TEXT NOT NULL,             -- request | build
    status TEXT NOT NULL,              -- queued | running | done | failed
    request TEXT NOT NULL,             -- JSON: query sets, folds, metric, seed
    progress TEXT NOT NULL DEFAULT '{}',
    result TEXT,                       -- JSON: the chosen parameters, the scores, the test and the decision
    profile_version INTEGER,           -- the version it recorded, if any
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tuning_runs_by_tenant ON tuning_runs (tenant, created_at);
"""

DEFAULT_VERSION = 0
TUNING_STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Profile:
    tenant: str
    version: int
    params: dict = field(default_factory=dict)  # stage parameters; {} for the global default
    status: str = "live"
    scores: dict = field(default_factory=dict)
    reason: str | None = None
    tuning_id: str | None = None
    created_at: float | None = None

    @property
    def is_default(self) -> bool:
        return self.version == DEFAULT_VERSION


@dataclass(frozen=True)
class TuningRun:
    id: str
    tenant: str
    trigger: str
    status: str
    request: dict
    progress: dict
    result: dict | None
    profile_version: int | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    # --- profiles ---------------------------------------------------------------------------------

    def _profile(self, r) -> Profile:
        return Profile(r["tenant"], r["version"], json.loads(r["params"]), r["status"], json.loads(r["scores"]),
                       r["reason"], r["tuning_id"], r["created_at"])

    def default(self, tenant: str) -> Profile:
        return Profile(tenant, DEFAULT_VERSION, {}, "live", {}, "the service's global default")

    def live(self, tenant: str) -> Profile:
        """The tenant's live profile; the global default when none was ever adopted (or it was rolled back to)."""
        r = self.db.conn().execute(
            "SELECT p.* FROM profile_live l JOIN retrieval_profiles p ON p.tenant = l.tenant AND p.version = l.version"
            " WHERE l.tenant = ?", (tenant,)).fetchone()
        return self._profile(r) if r else self.default(tenant)

    def get(self, tenant: str, version: int) -> Profile | None:
        if version == DEFAULT_VERSION:
            return self.default(tenant)
        r = self.db.conn().execute("SELECT * FROM retrieval_profiles WHERE tenant = ? AND version = ?",
                                   (tenant, version)).fetchone()
        return self._profile(r) if r else None

    def list(self, tenant: str) -> list[Profile]:
        """Every recorded version, oldest first (the global default is not among them)."""
        rows = self.db.conn().execute("SELECT * FROM retrieval_profiles WHERE tenant = ? ORDER BY version", (tenant,))
        return [self._profile(r) for r in rows]

    def previous(self, tenant: str) -> int | None:
        r = self.db.conn().execute("SELECT previous FROM profile_live WHERE tenant = ?", (tenant,)).fetchone()
        return r["previous"] if r else None

    def record(self, tenant: str, params: dict, scores: dict, reason: str, tuning_id: str | None,
               adopt: bool) -> Profile:
        """A new version with what the tuner found; live at once when `adopt` (the gate passed), else rejected."""
        with self.db.tx() as conn:
            r = conn.execute("SELECT MAX(version) AS v FROM retrieval_profiles WHERE tenant = ?", (tenant,)).fetchone()
            version = (r["v"] or DEFAULT_VERSION) + 1
            conn.execute(
                "INSERT INTO retrieval_profiles (tenant, version, params, status, scores, reason, tuning_id, created_at)"
                " VALUES (?, ?, ?, 'rejected', ?, ?, ?, ?)",
                (tenant, version, json.dumps(params, sort_keys=True), json.dumps(scores), reason, tuning_id,
                 time.time()))
            if adopt:
                self._switch(conn, tenant, version, "adopt")
        return self.get(tenant, version)

    def activate(self, tenant: str, version: int, action: str = "manual") -> int:
        """Make a recorded version (or 0, the global default) live; returns the version it replaced."""
        with self.db.tx() as conn:
            return self._switch(conn, tenant, version, action)

    def rollback(self, tenant: str) -> tuple[int, int]:
        """Back to the version live before this one; returns (from, to)."""
        with self.db.tx() as conn:
            cur = conn.execute("SELECT version, previous FROM profile_live WHERE tenant = ?", (tenant,)).fetchone()
            if cur is None or cur["previous"] is None:
                raise LookupError(f"tenant {tenant} has no previous retrieval profile to roll back to")
            self._switch(conn, tenant, cur["previous"], "rollback")
            return cur["version"], cur["previous"]

    def _switch(self, conn, tenant: str, version: int, action: str) -> int:
        if version != DEFAULT_VERSION and conn.execute(
                "SELECT 1 FROM retrieval_profiles WHERE tenant = ? AND version = ?", (tenant, version)).fetchone() is None:
            raise KeyError(f"tenant {tenant} has no retrieval profile version {version}")
        cur = conn.execute("SELECT version FROM profile_live WHERE tenant = ?", (tenant,)).fetchone()
        before = cur["version"] if cur else DEFAULT_VERSION
        if before == version:
            return before
        now = time.time()
        conn.execute("INSERT OR REPLACE INTO profile_live (tenant, version, previous, switched_at) VALUES (?, ?, ?, ?)",
                     (tenant, version, before, now))
        conn.execute("INSERT INTO profile_switches (tenant, at, from_version, to_version, action) VALUES (?, ?, ?, ?, ?)",
                     (tenant, now, before, version, action))
        conn.execute("UPDATE retrieval_profiles SET status = 'retired' WHERE tenant = ? AND version = ?", (tenant, before))
        conn.execute("UPDATE retrieval_profiles SET status = 'live' WHERE tenant = ? AND version = ?", (tenant, version))
        return before

    def switches(self, tenant: str) -> list[dict]:
        rows = self.db.conn().execute("SELECT at, from_version, to_version, action FROM profile_switches"
                                      " WHERE tenant = ? ORDER BY at", (tenant,))
        return [dict(r) for r in rows]

    # --- tuning runs ------------------------------------------------------------------------------

    def _tuning(self, r) -> TuningRun:
        return TuningRun(r["id"], r["tenant"], r["trigger"], r["status"], json.loads(r["request"]),
                         json.loads(r["progress"] or "{}"), json.loads(r["result"]) if r["result"] else None,
                         r["profile_version"], r["error"], r["created_at"], r["started_at"], r["finished_at"])

    def create_tuning(self, tenant: str, request: dict, trigger: str = "request") -> TuningRun:
        run_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute("INSERT INTO tuning_runs (id, tenant, trigger, status, request, created_at)"
                         " VALUES (?, ?, ?, 'queued', ?, ?)", (run_id, tenant, trigger, json.dumps(request), time.time()))
        return self.tuning(tenant, run_id)

    def tuning(self, tenant: str, run_id: str) -> TuningRun | None:
        r = self.db.conn().execute("SELECT * FROM tuning_runs WHERE tenant = ? AND id = ?", (tenant, run_id)).fetchone()
        return self._tuning(r) if r else None

    def tuning_by_id(self, run_id: str) -> TuningRun | None:
        r = self.db.conn().execute("SELECT * FROM tuning_runs WHERE id = ?", (run_id,)).fetchone()
        return self._tuning(r) if r else None

    def tunings(self, tenant: str, limit: int = 50) -> list[TuningRun]:
        """Newest first."""
        rows = self.db.conn().execute("SELECT * FROM tuning_runs WHERE tenant = ? ORDER BY created_at DESC LIMIT ?",
                                      (tenant, int(limit)))
        return [self._tuning(r) for r in rows]

    def start_tuning(self, run_id: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE tuning_runs SET status = 'running', started_at = ?, error = NULL WHERE id = ?",
                         (time.time(), run_id))

    def tuning_progress(self, run_id: str, progress: dict) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE tuning_runs SET progress = ? WHERE id = ?", (json.dumps(progress), run_id))

    def finish_tuning(self, run_id: str, result: dict, profile_version: int | None) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE tuning_runs SET status = 'done', finished_at = ?, result = ?, profile_version = ?"
                         " WHERE id = ?", (time.time(), json.dumps(result), profile_version, run_id))

    def fail_tuning(self, run_id: str, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE tuning_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                         (time.time(), error, run_id))
