"""A sync: list the source, diff the listing against what the last sync saw, ingest what changed, delete what is gone.

Per item of the listing, cheapest test first:
- its version (ETag, size and mtime, blob id, a 304) is the one recorded, its document is in the catalog and the
  source's metadata is the same: unchanged, nothing read;
- otherwise it is read; the same bytes (SHA-256) as recorded: unchanged, only its new version is recorded;
- otherwise it is staged, as a document `<source id>:<key>` of the source (metadata source_id, source_uri,
  source_modified), in an ingest job of up to SNAPDEX_SOURCE_BATCH_ITEMS items: the same job POST /ingest stages,
  ingested here, in the sync's own task, by the same code (index_snapshots.service.run_ingest_job). Chunks whose
  text was embedded before come from the embedding cache: a renamed file costs no embedding at all.
An item that fails (it cannot be read, or its document fails to parse) is reported with the reason and nothing of
it is recorded, so the next sync tries it again; the others go on. The items recorded but no longer listed are gone:
their documents are marked deleted once the whole listing went through. A sync that fails (the source unreachable,
a listing refused) deletes nothing.

Two syncs of one source never run at once on any host: a sync runs under the source's lock (db/locks.py, the one
builds use), and the catalog lets one sync per source be running (sources/store.py). A sync whose process died is
run again from the top (its message redelivered, or the embedded service's next start): the items its first run
recorded are counted as it counted them, so a resumed sync reports what it did as a whole.

Access: the source's `access` list is what its documents get. A document's own list set later (PATCH
/documents/{id}/access) wins and is kept across syncs, also when its item changes; a later change of the source's
list (PATCH /sources/{id}) wins again, and the next sync gives every document of the source the new list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from db.locks import LockTimeout, Locks
from index_snapshots.access import AccessSync
from index_snapshots.service import Requeue, run_ingest_job
from ingest.catalog import Catalog
from ingest.ids import clean_name
from ingest.jobs import JobStore, NewDocument
from ingest.pipeline import Ingestor
from sources import schedule
from sources.connectors.base import Item, ItemFailed, Limits, SourceError, iso, sha256
from sources.kinds import ValidationError, kind_of, parse_config, problems
from sources.store import COUNTS, ItemRow, SourceRow, SourceStore, SyncRow, SyncRunning
from wire.ids import MAX_ID_CHARS, id_problem

log = logging.getLogger(__name__)

BATCH_BYTES = 32 * 1024 * 1024  # bytes staged in one job, whatever the item count
HASHED_ID_DIGITS = 16
# Metadata fields a sync sets on every document; a source's own metadata may not name them.
RESERVED_METADATA = ("source_id", "source_uri", "source_modified", "git_commit")


def source_lock(source_id: str) -> str:
    return f"source:{source_id}"


def document_id(source_id: str, key: str) -> str:
    """`<source id>:<key>`, when that is a document id (ingest/ids.py). A key too long for one, or holding what an id
    may not (a control character), keeps what fits of it, cleaned, and ends in `~` and 16 hex digits of the SHA-256
    of the whole key: still unique, still starting with the source's id."""
    plain = f"{source_id}:{key}"
    if id_problem(plain) is None:
        return plain
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:HASHED_ID_DIGITS]
    room = MAX_ID_CHARS - len(source_id) - 2 - HASHED_ID_DIGITS
    return f"{source_id}:{clean_name(key, 'item')[:room].rstrip()}~{digest}"


def meta_hash(metadata: dict) -> str:
    return hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()[:16]


def _json(access: dict | None) -> str:
    return json.dumps(access, sort_keys=True)


@dataclass
class _Staged:
    item: Item
    doc_id: str
    content_hash: str
    outcome: str  # new | changed
    row: ItemRow


@dataclass
class Syncer:
    store: SourceStore
    catalog: Catalog
    jobs: JobStore
    ingestor: Ingestor
    access: AccessSync
    locks: Locks
    limits: Limits
    batch_items: int = 256
    lease_s: float = 30.0
    transient: tuple[type[BaseException], ...] = ()
    # Called with the tenant once a sync changed its documents: the caller queues the (debounced) build.
    changed: Callable[[str], None] = lambda tenant: None
    lock_wait_s: float = 30.0  # a duplicate message waits this long for the run holding the lock, then leaves it

    # --- starting syncs ------------------------------------------------------------------------------------------

    def start(self, tenant: str, source_id: str, trigger: str = "manual") -> str | None:
        """A new sync, recorded as running (the caller enqueues it); None when there is no such source,
        SyncRunning when one runs."""
        return self.store.start_sync(tenant, source_id, trigger)

    def tick(self, now: float | None = None) -> list[str]:
        """Start a sync of every source whose schedule has come (and which is not syncing); their ids, to enqueue.
        Safe to run on several hosts at once: the catalog lets one start per due time."""
        now = time.time() if now is None else now
        started = []
        for tenant, source_id in self.store.due(now):
            source = self.store.by_id(source_id)
            if source is None:
                continue
            if source.schedule is None:  # cleared since it was due
                self.store.update(tenant, source_id, {"next_sync_at": None})
                continue
            try:
                sync_id = self.store.start_sync(tenant, source_id, "schedule",
                                                next_sync_at=schedule.next_time(source.schedule, now), due_by=now)
            except SyncRunning:
                continue
            if sync_id is not None:
                started.append(sync_id)
        return started

    def _lock_free(self, source_id: str) -> bool:
        try:
            with self.locks.hold(source_lock(source_id), timeout=0):
                return True
        except LockTimeout:
            return False

    def interrupted(self) -> list[str]:
        """Syncs recorded as running that no process is running (their lock is free): after the embedded service
        restarts (its in-memory queue forgot them) they are enqueued again, and resume."""
        return [s.id for s in self.store.running() if self._lock_free(s.source_id)]

    def give_up(self, sync_id: str, reason: str) -> None:
        """The task could not run the sync (a dependency stayed down through every retry): it fails with the reason,
        unless another process holds its lock (then that one runs it)."""
        sync = self.store.sync(sync_id)
        if sync is not None and sync.status == "running" and self._lock_free(sync.source_id):
            self.store.finish(sync_id, "failed", sync.counts, sync.failures, reason)

    # --- running one -----------------------------------------------------------------------------------------------

    def run(self, sync_id: str) -> str | None:
        """Run a recorded sync to its end; its status then (None: no such sync, or another process runs it).
        Transient errors (the catalog or the vector store away) are raised for the task to retry: the sync stays
        running and resumes."""
        sync = self.store.sync(sync_id)
        if sync is None or sync.status != "running":
            return sync.status if sync else None
        held = ExitStack()
        try:
            held.enter_context(self.locks.hold(source_lock(sync.source_id), timeout=self.lock_wait_s))
        except LockTimeout:
            log.info("sync %s: another process holds the lock of source %s and runs it", sync_id, sync.source_id)
            return None
        with held:
            sync = self.store.sync(sync_id)  # again, under the lock: it may have finished meanwhile
            source = self.store.by_id(sync.source_id) if sync is not None else None
            if sync is None or sync.status != "running" or source is None:
                return sync.status if sync else None
            self.store.begin(sync_id)
            run = _Run(self, source, sync)
            try:
                run.go()
            except self.transient:
                raise
            except SourceError as e:
                log.warning("sync %s of source %s (tenant %s) failed: %s", sync_id, source.id, source.tenant, e)
                self.store.finish(sync_id, "failed", run.counts, run.failures, str(e))
            except Exception as e:
                log.exception("sync %s of source %s (tenant %s) failed", sync_id, source.id, source.tenant)
                self.store.finish(sync_id, "failed", run.counts, run.failures, f"{type(e).__name__}: {e}")
            else:
                self.store.finish(sync_id, "succeeded", run.counts, run.failures)
            finally:
                if run.touched:
                    self.changed(source.tenant)
            return self.store.sync(sync_id).status

    def delete_source(self, tenant: str, source_id: str) -> int | None:
        """Forget a source and mark every document of it deleted (they leave the next snapshot); how many. None when
        there is no such source; SyncRunning while one of its syncs is queued or running."""
        try:
            with self.locks.hold(source_lock(source_id), timeout=0):
                source = self.store.get(tenant, source_id)
                if source is None:
                    return None
                if source.running_sync is not None:
                    raise SyncRunning(source.running_sync)
                alive = [d for d, (status, _) in self.store.documents(tenant, source_id).items() if status != "deleted"]
                deleted = self.catalog.mark_deleted_many(tenant, alive)
                if not self.store.delete(tenant, source_id):  # a sync started between the two: it goes first
                    raise SyncRunning(self.store.get(tenant, source_id).running_sync or "?")
        except LockTimeout as e:
            raise SyncRunning(source_id) from e
        if source.kind == "git":
            from sources.connectors.git import forget

            forget(self.limits.data_dir, source_id)
        return deleted


def desired_access(source: SourceRow, row: ItemRow | None, current: tuple[str, str | None] | None
                   ) -> tuple[dict | None, bool]:
    """(the access list the item's document should have, whether it is the document's own), by "the later change
    wins": the source's list, unless the document was given another one since the sync wrote it and the source's
    list has not changed since."""
    if row is None or row.access_rev != source.access_rev:
        return source.access, False
    if current is None or current[0] == "deleted":
        return (json.loads(row.access_written) if row.own_access and row.access_written else source.access,
                row.own_access)
    now = json.loads(current[1]) if current[1] else None
    written = json.loads(row.access_written) if row.access_written is not None else source.access
    if row.own_access or now != written:
        return now, True
    return source.access, False


@dataclass
class _Run:
    """One run of one sync."""

    syncer: Syncer
    source: SourceRow
    sync: SyncRow
    counts: dict = field(default_factory=lambda: {k: 0 for k in COUNTS})
    failures: list[dict] = field(default_factory=list)
    touched: bool = False  # documents changed: a build is due
    staged: list[_Staged] = field(default_factory=list)
    staged_bytes: int = 0
    documents: list[NewDocument] = field(default_factory=list)
    access_changes: dict[str, dict | None] = field(default_factory=dict)
    rows: list[ItemRow] = field(default_factory=list)  # unchanged items whose record moves (version, access)

    def go(self) -> None:
        s, store = self.syncer, self.syncer.store
        kind = kind_of(self.source.kind)
        try:
            config = parse_config(kind, {**self.source.config, **store.secrets(self.source)})
        except ValidationError as e:
            raise SourceError(f"the source's config is not valid now: {problems(e)}") from e
        except ValueError as e:  # its credentials cannot be opened (the server key changed)
            raise SourceError(str(e)) from e
        session = kind.open(config, s.limits, self.source.id)
        try:
            known = store.items(self.source.id)
            self.docs = store.documents(self.source.tenant, self.source.id)
            self.meta = meta_hash(self.source.metadata)
            listed: set[str] = set()
            for item in session.list({k: r for k, r in known.items() if r.state == "synced"}):
                listed.add(item.key)
                self.counts["listed"] += 1
                self._item(session, item, known.get(item.key))
            self._flush()
            self._write_access()
            self._delete(known, listed, session.incomplete)
        finally:
            session.close()

    def _fail(self, key: str, doc_id: str, reason: str) -> None:
        self.counts["failed"] += 1
        self.failures.append({"item": key, "doc_id": doc_id, "reason": reason})

    def _item(self, session, item: Item, row: ItemRow | None) -> None:
        doc_id = document_id(self.source.id, item.key)
        if row is not None and row.state != "synced":
            row = None  # deleted by an earlier sync: it is back, as a new item
        if item.error is not None:
            return self._fail(item.key, doc_id, item.error)
        current = self.docs.get(doc_id)
        alive = current is not None and current[0] != "deleted"
        same_meta = row is not None and row.meta_hash == self.meta
        if row is not None and row.sync_id == self.sync.id and row.version == item.version and alive:
            self.counts[row.outcome or "unchanged"] += 1  # done by an earlier run of this sync (resumed)
            return
        if row is not None and alive and same_meta and item.version is not None and item.version == row.version:
            return self._unchanged(item, row, current, data_hash=row.content_hash)
        try:
            data = session.read(item)
        except ItemFailed as e:
            return self._fail(item.key, doc_id, str(e))
        digest = sha256(data)
        if row is not None and alive and same_meta and row.content_hash == digest:
            return self._unchanged(item, row, current, data_hash=digest)
        self._stage(item, doc_id, data, digest, row, current)

    def _unchanged(self, item: Item, row: ItemRow, current, data_hash: str | None) -> None:
        self.counts["unchanged"] += 1
        access, own = desired_access(self.source, row, current)
        now = json.loads(current[1]) if current[1] else None
        if now != access:
            self.access_changes[row.doc_id] = access
        moved = (row.version, row.content_hash, row.extra, row.modified, row.access_rev, row.access_written,
                 row.own_access) != (item.version, data_hash, item.extra, item.modified, self.source.access_rev,
                                     _json(access), own)
        if moved:
            row.version, row.content_hash, row.extra, row.modified = item.version, data_hash, item.extra, item.modified
            row.access_rev, row.access_written, row.own_access = self.source.access_rev, _json(access), own
            self.rows.append(row)

    def _stage(self, item: Item, doc_id: str, data: bytes, digest: str, row: ItemRow | None, current) -> None:
        access, own = desired_access(self.source, row, current)
        if row is not None and row.sync_id == self.sync.id:
            outcome = row.outcome or "changed"  # this sync saw it before its process died
        else:
            outcome = "changed" if row is not None else "new"
        metadata = {**self.source.metadata, **item.metadata, "source_id": self.source.id, "source_uri": item.uri}
        if item.modified is not None:
            metadata["source_modified"] = iso(item.modified)
        self.documents.append(NewDocument(doc_id, data, metadata, filename=item.filename, access=access))
        self.staged.append(_Staged(item, doc_id, digest, outcome, ItemRow(
            key=item.key, doc_id=doc_id, version=item.version, content_hash=digest, modified=item.modified,
            extra=item.extra, meta_hash=self.meta, access_rev=self.source.access_rev, access_written=_json(access),
            own_access=own, sync_id=self.sync.id, outcome=outcome)))
        self.staged_bytes += len(data)
        if len(self.staged) >= self.syncer.batch_items or self.staged_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        """Ingest the staged items as one job, here; record those that went in, report those that failed."""
        if not self.staged:
            return
        s = self.syncer
        job_id = s.jobs.create(self.source.tenant, self.documents)
        s.store.add_job(self.sync.id, job_id)
        self.touched = True
        while True:
            try:
                run_ingest_job(s.ingestor, s.jobs, job_id, transient=s.transient, lease_s=s.lease_s, access=s.access)
                break
            except Requeue:  # a document passed a parse limit: the job resumes where it stopped
                continue
        view = s.jobs.get(job_id, max_failures=len(self.staged))
        failed = {f["doc_id"]: f["reason"] for f in view.failures}
        done = []
        for st in self.staged:
            reason = failed.get(st.doc_id) or (view.error if view.status == "failed" else None)
            if reason is not None:
                self._fail(st.item.key, st.doc_id, reason)
            else:
                self.counts[st.outcome] += 1
                done.append(st.row)
        s.store.put_items(self.source.id, done)
        self.staged, self.documents, self.staged_bytes = [], [], 0

    def _write_access(self) -> None:
        """Unchanged documents whose access list is to change (the source's list changed): the catalog, then every
        snapshot holding them (payloads only, nothing re-embedded), then the records."""
        s = self.syncer
        if self.access_changes:
            for doc_id, access in self.access_changes.items():
                s.catalog.set_access(self.source.tenant, doc_id, access)
            s.access.apply(self.source.tenant, list(self.access_changes))
            self.touched = True
        s.store.put_items(self.source.id, self.rows)

    def _delete(self, known: dict[str, ItemRow], listed: set[str], incomplete: list[str]) -> None:
        s = self.syncer
        # Deleted by an earlier run of this sync (resumed): counted, not deleted twice.
        self.counts["deleted"] += sum(1 for r in known.values() if r.state == "deleted" and r.sync_id == self.sync.id)
        gone = [r for k, r in known.items() if r.state == "synced" and k not in listed
                and not any(k.startswith(p) for p in incomplete)]
        if gone:
            s.catalog.mark_deleted_many(self.source.tenant, [r.doc_id for r in gone])
            for r in gone:
                r.state, r.sync_id, r.outcome = "deleted", self.sync.id, "deleted"
            s.store.put_items(self.source.id, gone)
            self.counts["deleted"] += len(gone)
            self.touched = True
        s.store.purge_tombstones(self.source.id, keep_sync=self.sync.id)
