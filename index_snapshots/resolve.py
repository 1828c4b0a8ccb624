"""Which snapshot answers a request: the tenant's live one, or the one the request pins."""

from __future__ import annotations

import threading
import time

from errors import NotFound
from index_snapshots.manifest import Manifest, SnapshotRow
from index_snapshots.status import BUILT

READABLE = BUILT


class SnapshotNotFound(NotFound):
    pass


class SnapshotResolver:
    def __init__(self, manifest: Manifest, touch_every_s: float = 10.0) -> None:
        self.manifest = manifest
        self.touch_every_s = touch_every_s
        self._touched: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def resolve(self, tenant: str, pinned: str | None = None) -> SnapshotRow:
        # One read of the manifest per request: the whole answer comes from the snapshot it names.
        if pinned is None:
            snap = self.manifest.live(tenant)
            if snap is None:
                raise SnapshotNotFound(f"tenant {tenant} has no live snapshot yet: ingest documents first")
            return snap
        snap = self.manifest.get(tenant, pinned)
        if snap is None or snap.status not in READABLE:
            state = snap.status if snap else "unknown"
            raise SnapshotNotFound(f"snapshot {pinned} of tenant {tenant} is {state}; readable: {', '.join(READABLE)}")
        self._touch(tenant, pinned)
        return snap

    def _touch(self, tenant: str, snap_hash: str) -> None:
        # Retention spares snapshots read by pinned requests; one write per snapshot every few seconds is enough.
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get((tenant, snap_hash), -1e9) < self.touch_every_s:
                return
            self._touched[(tenant, snap_hash)] = now
        self.manifest.touch_read(tenant, snap_hash)
