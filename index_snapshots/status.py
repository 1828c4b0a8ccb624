"""The life of a snapshot, as the manifest records it and the API reports it.

    building ─> candidate ─> live ─> retired ─> deleted
        │           └─────────────────┘ (the gate or a person promotes; a rollback makes a retired one live)
        └─> failed ─> deleted

Only a built snapshot (candidate, live, retired) can be read or made live; retention deletes candidates, retired and
failed ones past the number kept. The enum lives with the wire models (wire/snapshots.py), which import no server
code, so the Python client can name it.
"""

from __future__ import annotations

from wire.snapshots import SnapshotStatus


# What a request may read, and what may be made live: the built snapshots.
BUILT = (SnapshotStatus.CANDIDATE, SnapshotStatus.LIVE, SnapshotStatus.RETIRED)
# What retention may drop, beyond the live, previous and kept ones.
DROPPABLE = (SnapshotStatus.CANDIDATE, SnapshotStatus.RETIRED, SnapshotStatus.FAILED)
