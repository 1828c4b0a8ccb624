"""Our own record of every snapshot and of which one is live per tenant.

Qdrant's own snapshots drop aliases, so the live pointer is kept here, in the catalog database, and a
promotion is one UPDATE of one row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from db.engine import Database
from db.tables import live as live_table
from db.tables import snapshots
from db.tables import switches as switches_table
from errors import Conflict, NotFound
from index_snapshots.status import BUILT, SnapshotStatus
from notify import emit

# The switch actions as webhooks name who promoted: the gate, or a person by hand (an override if the gate held it).
PROMOTED_BY = {"promote": "gate", "manual": "manual", "override": "override", "rollout": "rollout"}


# The live snapshot, one statement built once: /retrieve reads it on every request.
_LIVE = select(snapshots).select_from(live_table.join(
    snapshots, (snapshots.c.tenant == live_table.c.tenant) & (snapshots.c.hash == live_table.c.hash))
).where(live_table.c.tenant == bindparam("t"))


@dataclass
class SnapshotRow:
    tenant: str
    hash: str
    collection: str
    status: SnapshotStatus
    parent: str | None
    created_at: float
    built_at: float | None
    documents: int
    chunks: int
    embedded: int
    reused: int
    build_seconds: float | None
    config: dict
    reason: str | None
    last_read_at: float | None = None
    access_rev: int = 0  # moves when an access change is written into the snapshot (index_snapshots/access.py)


class Manifest:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _row(self, r) -> SnapshotRow:
        d = dict(r)
        d["config"] = json.loads(d["config"])
        d["status"] = SnapshotStatus(d["status"])
        return SnapshotRow(**d)

    def get(self, tenant: str, snap_hash: str, conn: Connection | None = None) -> SnapshotRow | None:
        r = self.db.first(select(snapshots).where(snapshots.c.tenant == tenant, snapshots.c.hash == snap_hash), conn)
        return self._row(r) if r else None

    def list(self, tenant: str) -> list[SnapshotRow]:
        rows = self.db.all(select(snapshots).where(snapshots.c.tenant == tenant).order_by(snapshots.c.created_at))
        return [self._row(r) for r in rows]

    def live(self, tenant: str) -> SnapshotRow | None:
        r = self.db.first(_LIVE, t=tenant)
        return self._row(r) if r else None

    def begin(self, tenant: str, snap_hash: str, collection: str, parent: str | None, config: dict) -> None:
        with self.db.tx() as conn:
            self.db.replace(conn, snapshots, {
                "tenant": tenant, "hash": snap_hash, "collection": collection, "status": SnapshotStatus.BUILDING,
                "parent": parent, "created_at": time.time(), "config": json.dumps(config, sort_keys=True)})

    def finish(self, tenant: str, snap_hash: str, *, documents: int, chunks: int, embedded: int, reused: int,
               seconds: float) -> None:
        with self.db.tx() as conn:
            self.db.lock(conn, "live", tenant)
            # Built again while it was live (its collection had gone, after a restore): it stays live.
            status = SnapshotStatus.LIVE if self._live_hash(conn, tenant) == snap_hash else SnapshotStatus.CANDIDATE
            conn.execute(self._where(update(snapshots), tenant, snap_hash).values(
                status=status, built_at=time.time(), documents=documents, chunks=chunks, embedded=embedded,
                reused=reused, build_seconds=seconds))

    def fail(self, tenant: str, snap_hash: str, reason: str) -> None:
        with self.db.tx() as conn:
            conn.execute(self._where(update(snapshots), tenant, snap_hash).values(status=SnapshotStatus.FAILED,
                                                                                  reason=reason))

    def hold(self, tenant: str, snap_hash: str, reason: str, verdict: dict | None = None) -> None:
        """A built snapshot the gate did not let through: it stays a readable candidate, with the reason. The
        snapshot.held event is written in the same transaction."""
        with self.db.tx() as conn:
            held = conn.execute(self._where(update(snapshots), tenant, snap_hash)
                                .where(snapshots.c.status == SnapshotStatus.CANDIDATE).values(reason=reason)).rowcount
            if held:
                emit(self.db, conn, tenant, "snapshot.held", {"snapshot": snap_hash, "reason": reason,
                                                              "live": self._live_hash(conn, tenant),
                                                              "verdict": verdict or {}})

    def rolled_back_from(self, tenant: str, snap_hash: str) -> bool:
        """Whether the last time this snapshot stopped being live was an operator's rollback."""
        s = switches_table.c
        action = self.db.scalar(select(s.action).where(s.tenant == tenant, s.from_hash == snap_hash)
                                .order_by(s.at.desc()).limit(1))
        return action == "rollback"

    def switches(self, tenant: str) -> list[dict]:
        s = switches_table.c
        return [dict(r) for r in self.db.all(select(s.at, s.from_hash, s.to_hash, s.action)
                                             .where(s.tenant == tenant).order_by(s.at))]

    def promote(self, tenant: str, snap_hash: str, action: str = "promote", by: str | None = None) -> str | None:
        """Make snap_hash live in one transaction; returns the hash it replaced. `by` names who did it by hand."""
        with self.db.tx() as conn:
            self.db.lock(conn, "live", tenant)
            return self._switch(conn, tenant, snap_hash, action, by)

    def rollback(self, tenant: str, by: str | None = None) -> tuple[str, str]:
        """Back to the snapshot that was live before this one; returns (from, to)."""
        with self.db.tx() as conn:
            self.db.lock(conn, "live", tenant)
            cur = self.db.first(select(live_table.c.hash, live_table.c.previous)
                                .where(live_table.c.tenant == tenant), conn)
            if cur is None or not cur["previous"]:
                raise Conflict(f"tenant {tenant} has no previous live snapshot to roll back to")
            self._switch(conn, tenant, cur["previous"], "rollback", by)
            return cur["hash"], cur["previous"]

    @staticmethod
    def _where(stmt, tenant: str, snap_hash: str):
        return stmt.where(snapshots.c.tenant == tenant, snapshots.c.hash == snap_hash)

    def _live_hash(self, conn: Connection, tenant: str) -> str | None:
        return self.db.scalar(select(live_table.c.hash).where(live_table.c.tenant == tenant), conn)

    def _switch(self, conn: Connection, tenant: str, snap_hash: str, action: str, by: str | None = None) -> str | None:
        """Under the tenant's "live" lock (PostgreSQL; SQLite's write lock on its own): one switch at a time, so
        exactly one snapshot is live whatever promotes and rolls back at once."""
        status = self.db.scalar(self._where(select(snapshots.c.status), tenant, snap_hash), conn)
        if status is None:
            raise NotFound(f"snapshot {snap_hash} of tenant {tenant} does not exist")
        if status not in BUILT:
            raise Conflict(f"snapshot {snap_hash} is {status}; only a built snapshot can be made live")
        previous = self._live_hash(conn, tenant)
        if previous == snap_hash:
            return previous
        now = time.time()
        self.db.replace(conn, live_table,
                        {"tenant": tenant, "hash": snap_hash, "previous": previous, "switched_at": now})
        conn.execute(switches_table.insert().values(tenant=tenant, at=now, from_hash=previous, to_hash=snap_hash,
                                                    action=action))
        conn.execute(self._where(update(snapshots), tenant, snap_hash).values(status=SnapshotStatus.LIVE))
        if previous:
            conn.execute(self._where(update(snapshots), tenant, previous).values(status=SnapshotStatus.RETIRED))
        # The event in the switch's own transaction: it exists exactly when the switch does.
        if action == "rollback":
            emit(self.db, conn, tenant, "snapshot.rolled_back", {"from": previous, "to": snap_hash, "by": by})
        else:
            emit(self.db, conn, tenant, "snapshot.promoted", {
                "snapshot": snap_hash, "previous": previous, "action": action,
                "by": "gate" if action == "promote" else by, "promoted_by": PROMOTED_BY.get(action, action)})
        return previous

    def previous(self, tenant: str) -> str | None:
        return self.db.scalar(select(live_table.c.previous).where(live_table.c.tenant == tenant))

    def touch_read(self, tenant: str, snap_hash: str) -> None:
        with self.db.tx() as conn:
            conn.execute(self._where(update(snapshots), tenant, snap_hash).values(last_read_at=time.time()))

    def bump_access(self, tenant: str) -> None:
        """Every snapshot of the tenant had access lists written into it: answers cached under the old ones (keyed
        by `access_rev`) are not served again, in this process or any other."""
        with self.db.tx() as conn:
            conn.execute(update(snapshots).where(snapshots.c.tenant == tenant)
                         .values(access_rev=snapshots.c.access_rev + 1))

    def mark_deleted(self, tenant: str, snap_hash: str, reason: str) -> None:
        with self.db.tx() as conn:
            conn.execute(self._where(update(snapshots), tenant, snap_hash).values(status=SnapshotStatus.DELETED,
                                                                                  reason=reason))

    def tenants(self) -> list[str]:
        """Tenants with a live snapshot."""
        return sorted(r["tenant"] for r in self.db.all(select(live_table.c.tenant)))

    def all_tenants(self) -> list[str]:
        """Tenants with any snapshot, live or not (every build held, say)."""
        return sorted(r["tenant"] for r in self.db.all(select(snapshots.c.tenant).distinct()))

    def unfinished(self) -> list[SnapshotRow]:
        building = select(snapshots).where(snapshots.c.status == SnapshotStatus.BUILDING)
        return [self._row(r) for r in self.db.all(building)]
