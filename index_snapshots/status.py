"""The life of a snapshot, as the manifest records it and the API reports it.

    building ─> candidate ─> live ─> retired ─> deleted
        │           └─────────────────┘ (the gate or a person promotes; a rollback makes a retired one live)
        └─> failed ─> deleted

Only a built snapshot (candidate, live, retired) can be read or made live; retention deletes candidates, retired and
failed ones past the number kept. This module imports nothing, so the API's schemas can name the enum lightly.
"""

from __future__ import annotations

from enum import StrEnum


class SnapshotStatus(StrEnum):
    BUILDING = "building"
    CANDIDATE = "candidate"
    LIVE = "live"
    RETIRED = "retired"
    FAILED = "failed"
    DELETED = "deleted"


# What a request may read, and what may be made live: the built snapshots.
BUILT = (SnapshotStatus.CANDIDATE, SnapshotStatus.LIVE, SnapshotStatus.RETIRED)
# What retention may drop, beyond the live, previous and kept ones.
DROPPABLE = (SnapshotStatus.CANDIDATE, SnapshotStatus.RETIRED, SnapshotStatus.FAILED)
