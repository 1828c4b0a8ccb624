"""Which snapshots of a tenant hold a document: read from the snapshots themselves (their keyword index on doc_ids),
so the answer is what a pinned /retrieve would see."""

from __future__ import annotations

from index_snapshots.manifest import Manifest
from index_snapshots.resolve import READABLE
from store.base import StoreError, VectorStore


def holding_snapshots(manifest: Manifest, store: VectorStore, tenant: str, doc_ids: list[str]) -> dict[str, list[str]]:
    """doc_id -> hashes of the readable snapshots (live first, then newest) holding at least one of its chunks."""
    snaps = sorted((s for s in manifest.list(tenant) if s.status in READABLE and store.has_collection(s.collection)),
                   key=lambda s: (s.status != "live", -(s.built_at or s.created_at)))

    def holds(collection: str, doc_id: str) -> bool:
        try:
            return bool(store.count(collection, filters={"doc_ids": doc_id}))
        except StoreError:
            if store.has_collection(collection):
                raise
            return False  # retention dropped it since it was listed: it holds nothing any more

    return {d: [s.hash for s in snaps if holds(s.collection, d)] for d in doc_ids}
