"""The sources' tables (db/tables.py: sources, source_syncs, source_items): each source with its credentials sealed,
its syncs newest first, and what the last sync saw of each item.

One sync of a source runs at a time: `start_sync` sets the source's `running_sync` only where it is empty, in the
transaction that records the sync, so two requests (or a request and the schedule) cannot both start one; `finish`
clears it in the transaction that settles the sync, with the webhook event of a failed one (the outbox)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.tables import documents, jobs, source_items, source_syncs, sources
from errors import Conflict
from notify import emit
from notify.secrets import SecretBox

COUNTS = ("listed", "new", "changed", "unchanged", "deleted", "failed")
MAX_FAILURES = 100  # failures listed on a sync (counts.failed counts them all)
KEEP_SYNCS = 100  # syncs kept per source, newest first
BOX_INFO = b"snapdex source credentials"


class NameTaken(Conflict, ValueError):
    pass


class SyncRunning(Conflict, RuntimeError):
    def __init__(self, sync_id: str) -> None:
        super().__init__(f"sync {sync_id} of this source is queued or running: one sync of a source runs at a time; "
                         "wait for it (GET /sources/{id}/syncs)")
        self.sync_id = sync_id


class SealedUnderAnotherKey(ValueError):
    """A source's credentials that cannot be opened: the server key changed since they were given."""


@dataclass
class SourceRow:
    id: str
    tenant: str
    name: str
    kind: str
    config: dict  # without its secrets
    secret_names: list[str]  # which credentials are set (sealed; never their values)
    schedule: dict | None
    metadata: dict
    access: dict | None
    access_rev: int
    created_at: float
    updated_at: float
    next_sync_at: float | None
    running_sync: str | None
    syncs_succeeded: int
    syncs_failed: int
    sealed: bytes | None = field(default=None, repr=False)


@dataclass
class SyncRow:
    id: str
    source_id: str
    tenant: str
    trigger: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    counts: dict
    failures: list[dict]
    error: str | None
    job_ids: list[str]

    @property
    def seconds(self) -> float | None:
        return None if self.started_at is None or self.finished_at is None else self.finished_at - self.started_at


@dataclass
class ItemRow:
    key: str
    doc_id: str
    state: str = "synced"
    version: str | None = None
    content_hash: str | None = None
    modified: float | None = None
    extra: dict = field(default_factory=dict)
    meta_hash: str | None = None
    access_rev: int = 0
    access_written: str | None = None  # JSON text of the list written ("null": the whole tenant)
    own_access: bool = False
    sync_id: str | None = None
    outcome: str | None = None


def _source(r) -> SourceRow:
    return SourceRow(
        id=r["id"], tenant=r["tenant"], name=r["name"], kind=r["kind"], config=json.loads(r["config"]),
        secret_names=[], schedule=json.loads(r["schedule"]) if r["schedule"] else None,
        metadata=json.loads(r["metadata"]), access=json.loads(r["access"]) if r["access"] else None,
        access_rev=r["access_rev"], created_at=r["created_at"], updated_at=r["updated_at"],
        next_sync_at=r["next_sync_at"], running_sync=r["running_sync"], syncs_succeeded=r["syncs_succeeded"],
        syncs_failed=r["syncs_failed"], sealed=r["secrets"])


def _sync(r) -> SyncRow:
    return SyncRow(id=r["id"], source_id=r["source_id"], tenant=r["tenant"], trigger=r["trigger"], status=r["status"],
                   created_at=r["created_at"], started_at=r["started_at"], finished_at=r["finished_at"],
                   attempts=r["attempts"], counts=json.loads(r["counts"]), failures=json.loads(r["failures"]),
                   error=r["error"], job_ids=json.loads(r["job_ids"]))


def _item(r) -> ItemRow:
    return ItemRow(key=r["key"], doc_id=r["doc_id"], state=r["state"], version=r["version"],
                   content_hash=r["content_hash"], modified=r["modified"], extra=json.loads(r["extra"]),
                   meta_hash=r["meta_hash"], access_rev=r["access_rev"], access_written=r["access_written"],
                   own_access=bool(r["own_access"]), sync_id=r["sync_id"], outcome=r["outcome"])


def doc_prefix(source_id: str) -> str:
    return f"{source_id}:"


class SourceStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db, self.box = db, box

    # --- sources -------------------------------------------------------------------------------------------------

    def seal(self, secrets: dict) -> bytes | None:
        return self.box.seal(json.dumps(secrets, sort_keys=True)) if secrets else None

    def secrets(self, row: SourceRow) -> dict:
        """The source's credentials, opened (for its connector only: never for an answer or a log)."""
        if row.sealed is None:
            return {}
        try:
            return json.loads(self.box.open(row.sealed))
        except ValueError as e:
            raise SealedUnderAnotherKey(
                "this source's credentials were sealed under another key: SNAPDEX_WEBHOOK_SECRET_KEY (or "
                "<data_dir>/webhook-secret.key) changed since they were given; send them again with "
                "PATCH /sources/{id}") from e

    def _named(self, row: SourceRow) -> SourceRow:
        try:
            row.secret_names = sorted(self.secrets(row))
        except ValueError:  # sealed under a server key that changed: none usable (its syncs say why)
            row.secret_names = []
        return row

    def create(self, tenant: str, name: str, kind: str, config: dict, secrets: dict, schedule: dict | None,
               metadata: dict, access: dict | None, next_sync_at: float | None) -> SourceRow:
        now = time.time()
        source_id = "src_" + uuid.uuid4().hex[:16]
        try:
            with self.db.tx() as conn:
                conn.execute(sources.insert().values(
                    id=source_id, tenant=tenant, name=name, kind=kind, config=json.dumps(config, sort_keys=True),
                    secrets=self.seal(secrets), schedule=json.dumps(schedule) if schedule else None,
                    metadata=json.dumps(metadata, sort_keys=True),
                    access=None if access is None else json.dumps(access, sort_keys=True), access_rev=0,
                    created_at=now, updated_at=now, next_sync_at=next_sync_at))
        except IntegrityError as e:
            raise NameTaken(f"tenant {tenant} has a source named {name!r} already") from e
        return self.get(tenant, source_id)

    def get(self, tenant: str, source_id: str) -> SourceRow | None:
        r = self.db.first(select(sources).where(sources.c.tenant == tenant, sources.c.id == source_id))
        return self._named(_source(r)) if r else None

    def by_id(self, source_id: str) -> SourceRow | None:
        r = self.db.first(select(sources).where(sources.c.id == source_id))
        return _source(r) if r else None

    def list(self, tenant: str) -> list[SourceRow]:
        rows = self.db.all(select(sources).where(sources.c.tenant == tenant).order_by(sources.c.created_at))
        return [self._named(_source(r)) for r in rows]

    def update(self, tenant: str, source_id: str, values: dict, secrets: dict | None = None) -> SourceRow | None:
        """Write the given fields (name, config, schedule, next_sync_at, metadata, access); `secrets` replaces the
        sealed credentials when given. A changed access list moves access_rev: the next sync gives every document
        of the source the new list (README, "Sources": the later change wins)."""
        row = self.get(tenant, source_id)
        if row is None:
            return None
        out: dict = {"updated_at": time.time()}
        for k, v in values.items():
            if k in ("config", "metadata"):
                out[k] = json.dumps(v, sort_keys=True)
            elif k == "schedule":
                out[k] = json.dumps(v) if v else None
            elif k == "access":
                out[k] = None if v is None else json.dumps(v, sort_keys=True)
                if v != row.access:
                    out["access_rev"] = sources.c.access_rev + 1
            else:
                out[k] = v
        if secrets is not None:
            out["secrets"] = self.seal(secrets)
        try:
            with self.db.tx() as conn:
                conn.execute(update(sources).where(sources.c.tenant == tenant, sources.c.id == source_id).values(**out))
        except IntegrityError as e:
            raise NameTaken(f"tenant {tenant} has a source named {values.get('name')!r} already") from e
        return self.get(tenant, source_id)

    def delete(self, tenant: str, source_id: str) -> bool:
        with self.db.tx() as conn:
            return conn.execute(delete(sources).where(sources.c.tenant == tenant, sources.c.id == source_id,
                                                      sources.c.running_sync.is_(None))).rowcount == 1

    # --- syncs ---------------------------------------------------------------------------------------------------

    def start_sync(self, tenant: str, source_id: str, trigger: str, next_sync_at: float | None = None,
                   due_by: float | None = None) -> str | None:
        """Record a sync as running and make it the source's one running sync; its id. SyncRunning (with the running
        one's id) when one runs; None when the source is gone, or (`due_by`: a scheduled start) is not due by then.
        `next_sync_at` moves the schedule on in the same transaction."""
        sync_id = "sync_" + uuid.uuid4().hex
        cond = [sources.c.tenant == tenant, sources.c.id == source_id, sources.c.running_sync.is_(None)]
        if due_by is not None:
            cond.append(sources.c.next_sync_at <= due_by)
        values: dict = {"running_sync": sync_id}
        if next_sync_at is not None:
            values["next_sync_at"] = next_sync_at
        with self.db.tx() as conn:
            if conn.execute(update(sources).where(*cond).values(**values)).rowcount != 1:
                running = conn.execute(select(sources.c.running_sync).where(
                    sources.c.tenant == tenant, sources.c.id == source_id)).first()
                if running is not None and running[0] is not None:
                    raise SyncRunning(running[0])
                return None
            conn.execute(source_syncs.insert().values(
                id=sync_id, source_id=source_id, tenant=tenant, trigger=trigger, status="running",
                created_at=time.time(), counts=json.dumps({k: 0 for k in COUNTS})))
        return sync_id

    def due(self, now: float) -> list[tuple[str, str]]:
        """(tenant, source id) of the sources whose schedule has come and that are not syncing."""
        rows = self.db.all(select(sources.c.tenant, sources.c.id).where(
            sources.c.next_sync_at <= now, sources.c.running_sync.is_(None)).order_by(sources.c.next_sync_at))
        return [(r["tenant"], r["id"]) for r in rows]

    def sync(self, sync_id: str) -> SyncRow | None:
        r = self.db.first(select(source_syncs).where(source_syncs.c.id == sync_id))
        return _sync(r) if r else None

    def syncs(self, source_id: str, limit: int = 50) -> list[SyncRow]:
        s = source_syncs.c
        rows = self.db.all(select(source_syncs).where(s.source_id == source_id)
                           .order_by(s.created_at.desc(), s.id.desc()).limit(limit))
        return [_sync(r) for r in rows]

    def last_finished(self, source_id: str) -> SyncRow | None:
        s = source_syncs.c
        r = self.db.first(select(source_syncs).where(s.source_id == source_id, s.status != "running")
                          .order_by(s.finished_at.desc()).limit(1))
        return _sync(r) if r else None

    def running(self) -> list[SyncRow]:
        return [_sync(r) for r in self.db.all(select(source_syncs).where(source_syncs.c.status == "running")
                                              .order_by(source_syncs.c.created_at))]

    def begin(self, sync_id: str) -> None:
        """A run of the sync starts (the first, or one resuming after its process died)."""
        with self.db.tx() as conn:
            conn.execute(update(source_syncs).where(source_syncs.c.id == sync_id).values(
                started_at=func.coalesce(source_syncs.c.started_at, time.time()),
                attempts=source_syncs.c.attempts + 1))

    def add_job(self, sync_id: str, job_id: str) -> None:
        with self.db.tx() as conn:
            jobs = json.loads(conn.execute(select(source_syncs.c.job_ids).where(source_syncs.c.id == sync_id))
                              .scalar() or "[]")
            conn.execute(update(source_syncs).where(source_syncs.c.id == sync_id)
                         .values(job_ids=json.dumps([*jobs, job_id])))

    def finish(self, sync_id: str, status: str, counts: dict, failures: list[dict], error: str | None = None) -> None:
        """Settle a running sync, free its source for the next one, and (failed) record the source.sync_failed
        event, all in one transaction. A sync settled already is left as it is."""
        with self.db.tx() as conn:
            row = conn.execute(select(source_syncs).where(source_syncs.c.id == sync_id)).mappings().first()
            if row is None or row["status"] != "running":
                return
            now = time.time()
            conn.execute(update(source_syncs).where(source_syncs.c.id == sync_id).values(
                status=status, finished_at=now, started_at=func.coalesce(source_syncs.c.started_at, now),
                counts=json.dumps(counts), failures=json.dumps(failures[:MAX_FAILURES]), error=error))
            counter = sources.c.syncs_succeeded if status == "succeeded" else sources.c.syncs_failed
            conn.execute(update(sources).where(sources.c.id == row["source_id"], sources.c.running_sync == sync_id)
                         .values(running_sync=None, **{counter.name: counter + 1}))
            if status == "failed":
                name = conn.execute(select(sources.c.name).where(sources.c.id == row["source_id"])).scalar()
                emit(self.db, conn, row["tenant"], "source.sync_failed", {
                    "source_id": row["source_id"], "name": name, "sync_id": sync_id, "error": error,
                    "counts": counts, "failures": failures[:MAX_FAILURES]}, dedupe=sync_id)
            old = select(source_syncs.c.id).where(source_syncs.c.source_id == row["source_id"]) \
                .order_by(source_syncs.c.created_at.desc()).offset(KEEP_SYNCS)
            conn.execute(delete(source_syncs).where(source_syncs.c.id.in_(old.scalar_subquery()),
                                                    source_syncs.c.status != "running"))

    # --- items ---------------------------------------------------------------------------------------------------

    def items(self, source_id: str) -> dict[str, ItemRow]:
        rows = self.db.all(select(source_items).where(source_items.c.source_id == source_id))
        return {r["key"]: _item(r) for r in rows}

    def put_items(self, source_id: str, items: list[ItemRow], conn: Connection | None = None) -> None:
        if not items:
            return
        rows = [{"source_id": source_id, "key": i.key, "doc_id": i.doc_id, "state": i.state, "version": i.version,
                 "content_hash": i.content_hash, "modified": i.modified, "extra": json.dumps(i.extra, sort_keys=True),
                 "meta_hash": i.meta_hash, "access_rev": i.access_rev, "access_written": i.access_written,
                 "own_access": i.own_access, "sync_id": i.sync_id, "outcome": i.outcome} for i in items]
        if conn is not None:
            for r in rows:
                self.db.replace(conn, source_items, r)
            return
        with self.db.tx() as c:
            for r in rows:
                self.db.replace(c, source_items, r)

    def purge_tombstones(self, source_id: str, keep_sync: str) -> None:
        """Forget the items an earlier sync deleted (kept so that a resumed sync would count them)."""
        i = source_items.c
        with self.db.tx() as conn:
            conn.execute(delete(source_items).where(i.source_id == source_id, i.state == "deleted",
                                                    i.sync_id != keep_sync))

    def documents(self, tenant: str, source_id: str) -> dict[str, tuple[str, str | None]]:
        """doc_id -> (status, access list as stored JSON) of the source's documents in the catalog: the ids are
        `<source id>:...`, a range of the catalog's primary key."""
        d, prefix = documents.c, doc_prefix(source_id)
        rows = self.db.all(select(d.doc_id, d.status, d.access).where(
            d.tenant == tenant, d.doc_id >= prefix, d.doc_id < prefix[:-1] + chr(ord(prefix[-1]) + 1)))
        return {r["doc_id"]: (r["status"], r["access"]) for r in rows}

    def discard(self, sync_id: str) -> None:
        """Forget a sync that was never queued (the broker refused it): its source is free again."""
        with self.db.tx() as conn:
            conn.execute(update(sources).where(sources.c.running_sync == sync_id).values(running_sync=None))
            conn.execute(delete(source_syncs).where(source_syncs.c.id == sync_id))

    def held(self, source_id: str) -> int:
        """Items the source holds now (one document each)."""
        i = source_items.c
        return self.db.scalar(select(func.count()).where(i.source_id == source_id, i.state == "synced")) or 0

    def chunks_embedded(self, job_ids: list[str]) -> int:
        """Chunks the sync's ingest jobs sent to the model."""
        if not job_ids:
            return 0
        return self.db.scalar(select(func.coalesce(func.sum(jobs.c.chunks_embedded), 0))
                              .where(jobs.c.id.in_(job_ids))) or 0

    # --- monitoring ----------------------------------------------------------------------------------------------

    def stats(self) -> list[dict]:
        """Per source: its counters, the items it holds, and its last finished sync (the metrics' view)."""
        i, s = source_items.c, source_syncs.c
        with self.db.read() as conn:
            held = dict(conn.execute(select(i.source_id, func.count()).where(i.state == "synced")
                                     .group_by(i.source_id)).all())
            out = []
            for r in conn.execute(select(sources)).mappings():
                last = conn.execute(select(source_syncs).where(s.source_id == r["id"], s.status != "running")
                                    .order_by(s.finished_at.desc()).limit(1)).mappings().first()
                out.append({"tenant": r["tenant"], "source": r["id"], "name": r["name"], "kind": r["kind"],
                            "succeeded": r["syncs_succeeded"], "failed": r["syncs_failed"],
                            "running": r["running_sync"] is not None, "items": held.get(r["id"], 0),
                            "next_sync_at": r["next_sync_at"], "last": _sync(last) if last else None})
        return out


