"""The snapshot manifest on SQLite and PostgreSQL: the life of a snapshot, and one live snapshot whatever switches
at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from db.tables import snapshots
from errors import Conflict, NotFound
from index_snapshots.manifest import Manifest


@pytest.fixture
def manifest(catalog_db):
    return Manifest(catalog_db)


def built(m: Manifest, tenant: str, h: str, parent: str | None = None) -> None:
    m.begin(tenant, h, f"snap-{tenant}-{h}", parent, {"model": "m", "dim": 32})
    m.finish(tenant, h, documents=3, chunks=7, embedded=5, reused=2, seconds=0.5)


def test_a_snapshot_is_built_promoted_rolled_back_and_retired(manifest):
    assert manifest.live("t") is None and manifest.previous("t") is None
    manifest.begin("t", "a", "snap-t-a", None, {"model": "m"})
    assert [s.hash for s in manifest.unfinished()] == ["a"] and manifest.get("t", "a").status == "building"
    manifest.finish("t", "a", documents=3, chunks=7, embedded=5, reused=2, seconds=0.5)
    a = manifest.get("t", "a")
    assert (a.status, a.documents, a.chunks, a.embedded, a.reused) == ("candidate", 3, 7, 5, 2)
    assert a.config == {"model": "m"}
    assert manifest.promote("t", "a") is None and manifest.live("t").hash == "a"
    built(manifest, "t", "b", parent="a")
    manifest.hold("t", "b", "held by the gate: recall fell")
    assert manifest.get("t", "b").reason == "held by the gate: recall fell"
    assert manifest.promote("t", "b", action="override") == "a"
    assert manifest.get("t", "a").status == "retired" and manifest.previous("t") == "a"
    assert manifest.promote("t", "b") == "b"  # already live: nothing changes, nothing recorded
    assert manifest.rollback("t") == ("b", "a") and manifest.live("t").hash == "a"
    assert manifest.rolled_back_from("t", "b") and not manifest.rolled_back_from("t", "a")
    assert [s["action"] for s in manifest.switches("t")] == ["promote", "override", "rollback"]
    manifest.touch_read("t", "b")
    assert manifest.get("t", "b").last_read_at is not None
    manifest.mark_deleted("t", "b", "retention")
    assert manifest.get("t", "b").status == "deleted"
    with pytest.raises(Conflict, match="only a built snapshot"):  # a 409
        manifest.promote("t", "b")
    with pytest.raises(NotFound):  # a 404
        manifest.promote("t", "zzz")
    manifest.begin("t", "c", "snap-t-c", "a", {})
    manifest.fail("t", "c", "interrupted")
    assert manifest.get("t", "c").status == "failed" and manifest.unfinished() == []
    built(manifest, "u", "x")
    assert manifest.tenants() == ["t"] and manifest.all_tenants() == ["t", "u"]
    assert [s.hash for s in manifest.list("t")] == ["a", "b", "c"]


def test_rollback_needs_a_previous_snapshot(manifest):
    with pytest.raises(Conflict, match="no previous live snapshot"):
        manifest.rollback("t")
    built(manifest, "t", "a")
    manifest.promote("t", "a")
    with pytest.raises(Conflict):
        manifest.rollback("t")


def test_a_live_snapshot_built_again_stays_live(manifest):
    """After a restore its collection is gone: the rebuild under the same hash must not leave it a candidate."""
    built(manifest, "t", "a")
    manifest.promote("t", "a")
    built(manifest, "t", "a")
    assert manifest.get("t", "a").status == "live" and manifest.live("t").hash == "a"


def test_concurrent_promotions_and_rollbacks_leave_exactly_one_live_snapshot(manifest, catalog_db):
    hashes = [f"h{i}" for i in range(6)]
    for h in hashes:
        built(manifest, "t", h)
    errors, barrier = [], threading.Barrier(6)

    def churn(i: int) -> None:
        barrier.wait()
        for n in range(15):
            try:
                if n % 4 == 3:
                    manifest.rollback("t")
                else:
                    manifest.promote("t", hashes[(i + n) % len(hashes)])
            except LookupError:
                pass  # nothing to roll back to yet
            except Exception as e:  # any other failure is a bug
                errors.append(repr(e))

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    live = catalog_db.scalar(select(func.count()).select_from(snapshots)
                             .where(snapshots.c.tenant == "t", snapshots.c.status == "live"))
    assert live == 1 and manifest.get("t", manifest.live("t").hash).status == "live"
    # The switch log chains: each switch starts where the one before ended.
    log = manifest.switches("t")
    assert all(a["to_hash"] == b["from_hash"] for a, b in zip(log, log[1:]))
