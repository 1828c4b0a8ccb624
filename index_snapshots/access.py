"""Built snapshots follow the catalog's access lists: a changed list is written into the payload of every snapshot
of the tenant that holds the document (live, candidates, retired, the one being built), not only into the next.

Otherwise a rollback, or a request pinned to an older snapshot, would answer with a list that was revoked. Only
payload fields change (each point's `access`, its sources' tokens, its twins' tokens: ingest/access.py
`reassigned`), never a vector, so a snapshot stays what it was measured as; the snapshot row's `access_rev` moves,
which every result-cache key holds (index_snapshots/querying.py), so no answer computed under the old lists is
served again by any process.

Every writer holds the tenant's access lock and writes the lists the catalog holds *now*, so the last to take the
lock leaves every snapshot with the newest list whatever order changes arrived in. A build takes the same lock at
its end (`reconcile`): a change made while it ran is either in what it read or written into its collection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from db.locks import Locks
from index_snapshots.manifest import Manifest
from index_snapshots.status import SnapshotStatus
from ingest.access import TWINS, reassigned
from ingest.catalog import Catalog
from store.base import StoreError, VectorStore

log = logging.getLogger(__name__)

DOCS_PER_SCROLL = 256  # doc ids in one match-any filter
SCROLL_PAGE = 512


def access_lock(tenant: str) -> str:
    return f"access:{tenant}"


def rewrite_collection(store: VectorStore, collection: str, lists: dict[str, dict | None]) -> int:
    """Give the points of `collection` that serve a document of `lists` (or name it as a near-duplicate twin) that
    document's list; returns how many points changed."""
    ids = sorted(lists)
    found: dict[str, dict] = {}
    for i in range(0, len(ids), DOCS_PER_SCROLL):
        part = ids[i:i + DOCS_PER_SCROLL]
        for filters in ({"doc_ids": part}, {TWINS: part}):
            offset = None
            while True:
                records, offset = store.scroll(collection, filters=filters, limit=SCROLL_PAGE, offset=offset)
                found.update((r.id, r.payload) for r in records)
                if offset is None:
                    break
    updates = {pid: fields for pid, payload in found.items() if (fields := reassigned(payload, lists)) is not None}
    if updates:
        store.set_payloads(collection, updates)
    return len(updates)


@dataclass
class AccessSync:
    catalog: Catalog
    manifest: Manifest
    store: VectorStore
    locks: Locks

    def apply(self, tenant: str, doc_ids: Iterable[str], always_bump: bool = True) -> int:
        """Write the catalog's current lists of `doc_ids` into every snapshot collection of the tenant, then move
        their access revision (answers cached under the old lists are never served again). Returns the number of
        points rewritten. Idempotent: run again, it changes nothing but the revision. `always_bump` False: the
        revision moves only when a point changed (an ingest job, whose documents are mostly new, keeps the cache)."""
        with self.locks.hold(access_lock(tenant)):
            return self._write(tenant, doc_ids, always_bump)

    def change(self, tenant: str, doc_id: str, access: dict | None) -> bool:
        """A document's new list, in the catalog and every snapshot, or in none: if a snapshot cannot take it, the
        catalog's previous list is put back and written over what was, all under the lock, and the error raised.
        False when the catalog has no such document (or a deleted one)."""
        with self.locks.hold(access_lock(tenant)):
            before = self.catalog.access_lists(tenant, [doc_id])
            if doc_id not in before or not self.catalog.set_access(tenant, doc_id, access):
                return False
            try:
                self._write(tenant, [doc_id], always_bump=True)
            except Exception:
                self.catalog.set_access(tenant, doc_id, before[doc_id])
                try:
                    self._write(tenant, [doc_id], always_bump=True)
                except Exception:  # the first error is the answer; the same change sent again finishes either
                    log.exception("the previous access list of %r (tenant %s) could not be written back into "
                                  "every snapshot", doc_id, tenant)
                raise
        return True

    def _write(self, tenant: str, doc_ids: Iterable[str], always_bump: bool) -> int:
        lists = self.catalog.access_lists(tenant, doc_ids)
        if not lists:
            return 0
        points = 0
        for snap in self.manifest.list(tenant):
            if snap.status != SnapshotStatus.DELETED and self.store.has_collection(snap.collection):
                try:
                    points += rewrite_collection(self.store, snap.collection, lists)
                except StoreError:
                    # Retention (under the build lock, not this one) may drop a collection meanwhile: gone, it
                    # answers no one. Any other failure stands; the change is idempotent, so sending it again
                    # finishes it.
                    if self.store.has_collection(snap.collection):
                        raise
        if points or always_bump:
            self.manifest.bump_access(tenant)
        if points:
            log.info("access lists of %d documents of %s written into %d points of its snapshots", len(lists), tenant,
                     points)
        return points

    def reconcile(self, tenant: str, collection: str, built_with: dict[str, dict | None]) -> int:
        """At the end of a build: the lists changed since the build read the catalog (`built_with`: doc id -> the
        list it was built with) are written into its collection."""
        with self.locks.hold(access_lock(tenant)):
            now = self.catalog.access_lists(tenant, built_with)
            changed = {d: a for d, a in now.items() if a != built_with[d]}
            return rewrite_collection(self.store, collection, changed) if changed else 0
