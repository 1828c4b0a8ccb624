"""Retrieval profiles: a tenant's stage parameters, versioned like snapshots, and the tuning runs that propose them.

Version 0 is the service's global default (no row: whatever the settings say). A tuned profile records the full
set of parameters the tuner searched, so it means the same thing whatever the global default becomes. One version
is live per tenant; adopting one is one write of the live row in the same transaction that records it, and a
rollback switches back to the version live before, as snapshots do. Tables: `db/tables.py` (migration 0003).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from db.engine import Database
from db.tables import profile_live, profile_switches, retrieval_profiles, tuning_runs
from errors import Conflict, NotFound

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


P, L, T = retrieval_profiles.c, profile_live.c, tuning_runs.c


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- profiles ---------------------------------------------------------------------------------

    @staticmethod
    def _profile(r) -> Profile:
        return Profile(r["tenant"], r["version"], json.loads(r["params"]), r["status"], json.loads(r["scores"]),
                       r["reason"], r["tuning_id"], r["created_at"])

    def default(self, tenant: str) -> Profile:
        return Profile(tenant, DEFAULT_VERSION, {}, "live", {}, "the service's global default")

    def live(self, tenant: str) -> Profile:
        """The tenant's live profile; the global default when none was ever adopted (or it was rolled back to)."""
        r = self.db.first(select(retrieval_profiles).join(
            profile_live, (L.tenant == P.tenant) & (L.version == P.version)).where(L.tenant == tenant))
        return self._profile(r) if r else self.default(tenant)

    def get(self, tenant: str, version: int) -> Profile | None:
        if version == DEFAULT_VERSION:
            return self.default(tenant)
        r = self.db.first(select(retrieval_profiles).where(P.tenant == tenant, P.version == version))
        return self._profile(r) if r else None

    def list(self, tenant: str) -> list[Profile]:
        """Every recorded version, oldest first (the global default is not among them)."""
        return [self._profile(r) for r in
                self.db.all(select(retrieval_profiles).where(P.tenant == tenant).order_by(P.version))]

    def previous(self, tenant: str) -> int | None:
        return self.db.scalar(select(L.previous).where(L.tenant == tenant))

    def record(self, tenant: str, params: dict, scores: dict, reason: str, tuning_id: str | None,
               adopt: bool) -> Profile:
        """A new version with what the tuner found; live at once when `adopt` (the gate passed), else rejected."""
        with self.db.tx() as conn:
            self.db.lock(conn, "profile", tenant)  # versions are numbered per tenant: one writer at a time
            version = (self.db.scalar(select(func.max(P.version)).where(P.tenant == tenant), conn)
                       or DEFAULT_VERSION) + 1
            conn.execute(retrieval_profiles.insert().values(
                tenant=tenant, version=version, params=json.dumps(params, sort_keys=True), status="rejected",
                scores=json.dumps(scores), reason=reason, tuning_id=tuning_id, created_at=time.time()))
            if adopt:
                self._switch(conn, tenant, version, "adopt")
        return self.get(tenant, version)

    def activate(self, tenant: str, version: int, action: str = "manual") -> int:
        """Make a recorded version (or 0, the global default) live; returns the version it replaced."""
        with self.db.tx() as conn:
            self.db.lock(conn, "profile", tenant)
            return self._switch(conn, tenant, version, action)

    def rollback(self, tenant: str) -> tuple[int, int]:
        """Back to the version live before this one; returns (from, to)."""
        with self.db.tx() as conn:
            self.db.lock(conn, "profile", tenant)
            cur = self.db.first(select(L.version, L.previous).where(L.tenant == tenant), conn)
            if cur is None or cur["previous"] is None:
                raise Conflict(f"tenant {tenant} has no previous retrieval profile to roll back to")
            self._switch(conn, tenant, cur["previous"], "rollback")
            return cur["version"], cur["previous"]

    def _switch(self, conn, tenant: str, version: int, action: str) -> int:
        if version != DEFAULT_VERSION and self.db.first(
                select(P.version).where(P.tenant == tenant, P.version == version), conn) is None:
            raise NotFound(f"tenant {tenant} has no retrieval profile version {version}")
        before = self.db.scalar(select(L.version).where(L.tenant == tenant), conn)
        before = DEFAULT_VERSION if before is None else before
        if before == version:
            return before
        now = time.time()
        self.db.replace(conn, profile_live, {"tenant": tenant, "version": version, "previous": before,
                                             "switched_at": now})
        conn.execute(profile_switches.insert().values(tenant=tenant, at=now, from_version=before, to_version=version,
                                                      action=action))
        conn.execute(update(retrieval_profiles).where(P.tenant == tenant, P.version == before).values(status="retired"))
        conn.execute(update(retrieval_profiles).where(P.tenant == tenant, P.version == version).values(status="live"))
        return before

    def switches(self, tenant: str) -> list[dict]:
        s = profile_switches.c
        return [dict(r) for r in self.db.all(select(s.at, s.from_version, s.to_version, s.action)
                                             .where(s.tenant == tenant).order_by(s.at))]

    # --- tuning runs ------------------------------------------------------------------------------

    @staticmethod
    def _tuning(r) -> TuningRun:
        return TuningRun(r["id"], r["tenant"], r["trigger"], r["status"], json.loads(r["request"]),
                         json.loads(r["progress"] or "{}"), json.loads(r["result"]) if r["result"] else None,
                         r["profile_version"], r["error"], r["created_at"], r["started_at"], r["finished_at"])

    def create_tuning(self, tenant: str, request: dict, trigger: str = "request") -> TuningRun:
        run_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute(tuning_runs.insert().values(id=run_id, tenant=tenant, trigger=trigger, status="queued",
                                                     request=json.dumps(request), progress="{}",
                                                     created_at=time.time()))
        return self.tuning(tenant, run_id)

    def tuning(self, tenant: str, run_id: str) -> TuningRun | None:
        r = self.db.first(select(tuning_runs).where(T.tenant == tenant, T.id == run_id))
        return self._tuning(r) if r else None

    def tunings(self, tenant: str, limit: int = 50) -> list[TuningRun]:
        """Newest first."""
        return [self._tuning(r) for r in self.db.all(
            select(tuning_runs).where(T.tenant == tenant).order_by(T.created_at.desc()).limit(int(limit)))]

    def _set(self, run_id: str, **values) -> None:
        with self.db.tx() as conn:
            conn.execute(update(tuning_runs).where(T.id == run_id).values(**values))

    def start_tuning(self, run_id: str) -> None:
        self._set(run_id, status="running", started_at=time.time(), error=None)

    def tuning_progress(self, run_id: str, progress: dict) -> None:
        self._set(run_id, progress=json.dumps(progress))

    def finish_tuning(self, run_id: str, result: dict, profile_version: int | None) -> None:
        self._set(run_id, status="done", finished_at=time.time(), result=json.dumps(result),
                  profile_version=profile_version)

    def fail_tuning(self, run_id: str, error: str) -> None:
        self._set(run_id, status="failed", finished_at=time.time(), error=error)
