"""Our own record of every snapshot and of which one is live per tenant.

Qdrant's own snapshots drop aliases, so the live pointer is kept here, in the catalog database, and a
promotion is one UPDATE of one row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ingest.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    tenant TEXT NOT NULL,
    hash TEXT NOT NULL,
    collection TEXT NOT NULL,
    status TEXT NOT NULL,              -- building | candidate | live | retired | failed | deleted
    parent TEXT,
    created_at REAL NOT NULL,
    built_at REAL,
    documents INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    embedded INTEGER NOT NULL DEFAULT 0,
    reused INTEGER NOT NULL DEFAULT 0,
    build_seconds REAL,
    config TEXT NOT NULL,
    reason TEXT,
    last_read_at REAL,                 -- last pinned read: retention spares a snapshot somebody is reading
    PRIMARY KEY (tenant, hash)
);
CREATE TABLE IF NOT EXISTS live (
    tenant TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    previous TEXT,
    switched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS switches (
    tenant TEXT NOT NULL,
    at REAL NOT NULL,
    from_hash TEXT,
    to_hash TEXT NOT NULL,
    action TEXT NOT NULL               -- promote | rollback | manual | override
);
"""


@dataclass
class SnapshotRow:
    tenant: str
    hash: str
    collection: str
    status: str
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


class Manifest:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def _row(self, r) -> SnapshotRow:
        d = dict(r)
        d["config"] = json.loads(d["config"])
        return SnapshotRow(**d)

    def get(self, tenant: str, snap_hash: str) -> SnapshotRow | None:
        r = self.db.conn().execute("SELECT * FROM snapshots WHERE tenant = ? AND hash = ?", (tenant, snap_hash)).fetchone()
        return self._row(r) if r else None

    def list(self, tenant: str) -> list[SnapshotRow]:
        rows = self.db.conn().execute("SELECT * FROM snapshots WHERE tenant = ? ORDER BY created_at", (tenant,))
        return [self._row(r) for r in rows]

    def live(self, tenant: str) -> SnapshotRow | None:
        r = self.db.conn().execute(
            "SELECT s.* FROM live l JOIN snapshots s ON s.tenant = l.tenant AND s.hash = l.hash WHERE l.tenant = ?",
            (tenant,),
        ).fetchone()
        return self._row(r) if r else None

    def begin(self, tenant: str, snap_hash: str, collection: str, parent: str | None, config: dict) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (tenant, hash, collection, status, parent, created_at, config)"
                " VALUES (?, ?, ?, 'building', ?, ?, ?)",
                (tenant, snap_hash, collection, parent, time.time(), json.dumps(config, sort_keys=True)),
            )

    def finish(self, tenant: str, snap_hash: str, *, documents: int, chunks: int, embedded: int, reused: int,
               seconds: float) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE snapshots SET status = 'candidate', built_at = ?, documents = ?, chunks = ?, embedded = ?,"
                " reused = ?, build_seconds = ? WHERE tenant = ? AND hash = ?",
                (time.time(), documents, chunks, embedded, reused, seconds, tenant, snap_hash),
            )

    def fail(self, tenant: str, snap_hash: str, reason: str) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE snapshots SET status = 'failed', reason = ? WHERE tenant = ? AND hash = ?",
                (reason, tenant, snap_hash),
            )

    def hold(self, tenant: str, snap_hash: str, reason: str) -> None:
        """A built snapshot the gate did not let through: it stays a readable candidate, with the reason."""
        with self.db.tx() as conn:
            conn.execute("UPDATE snapshots SET reason = ? WHERE tenant = ? AND hash = ? AND status = 'candidate'",
                         (reason, tenant, snap_hash))

    def rolled_back_from(self, tenant: str, snap_hash: str) -> bool:
        """Whether the last time this snapshot stopped being live was an operator's rollback."""
        r = self.db.conn().execute("SELECT action FROM switches WHERE tenant = ? AND from_hash = ? ORDER BY at DESC"
                                   " LIMIT 1", (tenant, snap_hash)).fetchone()
        return r is not None and r["action"] == "rollback"

    def switches(self, tenant: str) -> list[dict]:
        rows = self.db.conn().execute("SELECT at, from_hash, to_hash, action FROM switches WHERE tenant = ?"
                                      " ORDER BY at", (tenant,))
        return [dict(r) for r in rows]

    def promote(self, tenant: str, snap_hash: str, action: str = "promote") -> str | None:
        """Make snap_hash live in one transaction; returns the hash it replaced."""
        with self.db.tx() as conn:
            return self._switch(conn, tenant, snap_hash, action)

    def rollback(self, tenant: str) -> tuple[str, str]:
        """Back to the snapshot that was live before this one; returns (from, to)."""
        with self.db.tx() as conn:
            cur = conn.execute("SELECT hash, previous FROM live WHERE tenant = ?", (tenant,)).fetchone()
            if cur is None or not cur["previous"]:
                raise LookupError(f"tenant {tenant} has no previous live snapshot to roll back to")
            self._switch(conn, tenant, cur["previous"], "rollback")
            return cur["hash"], cur["previous"]

    def _switch(self, conn, tenant: str, snap_hash: str, action: str) -> str | None:
        s = conn.execute("SELECT status FROM snapshots WHERE tenant = ? AND hash = ?", (tenant, snap_hash)).fetchone()
        if s is None:
            raise KeyError(f"snapshot {snap_hash} of tenant {tenant} does not exist")
        if s["status"] not in ("candidate", "live", "retired"):
            raise ValueError(f"snapshot {snap_hash} is {s['status']}; only a built snapshot can be made live")
        cur = conn.execute("SELECT hash FROM live WHERE tenant = ?", (tenant,)).fetchone()
        previous = cur["hash"] if cur else None
        if previous == snap_hash:
            return previous
        now = time.time()
        conn.execute("INSERT OR REPLACE INTO live (tenant, hash, previous, switched_at) VALUES (?, ?, ?, ?)",
                     (tenant, snap_hash, previous, now))
        conn.execute("INSERT INTO switches (tenant, at, from_hash, to_hash, action) VALUES (?, ?, ?, ?, ?)",
                     (tenant, now, previous, snap_hash, action))
        conn.execute("UPDATE snapshots SET status = 'live' WHERE tenant = ? AND hash = ?", (tenant, snap_hash))
        if previous:
            conn.execute("UPDATE snapshots SET status = 'retired' WHERE tenant = ? AND hash = ?", (tenant, previous))
        return previous

    def previous(self, tenant: str) -> str | None:
        r = self.db.conn().execute("SELECT previous FROM live WHERE tenant = ?", (tenant,)).fetchone()
        return r["previous"] if r else None

    def touch_read(self, tenant: str, snap_hash: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE snapshots SET last_read_at = ? WHERE tenant = ? AND hash = ?",
                         (time.time(), tenant, snap_hash))

    def mark_deleted(self, tenant: str, snap_hash: str, reason: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE snapshots SET status = 'deleted', reason = ? WHERE tenant = ? AND hash = ?",
                         (reason, tenant, snap_hash))

    def tenants(self) -> list[str]:
        """Tenants with a live snapshot."""
        return [r[0] for r in self.db.conn().execute("SELECT tenant FROM live ORDER BY tenant")]

    def all_tenants(self) -> list[str]:
        """Tenants with any snapshot, live or not (every build held, say)."""
        return [r[0] for r in self.db.conn().execute("SELECT DISTINCT tenant FROM snapshots ORDER BY tenant")]

    def unfinished(self) -> list[SnapshotRow]:
        rows = self.db.conn().execute("SELECT * FROM snapshots WHERE status = 'building'")
        return [self._row(r) for r in rows]
