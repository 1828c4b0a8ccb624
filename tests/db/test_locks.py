"""The build lock across processes, on SQLite (a lease) and PostgreSQL (a session advisory lock): exclusive, and
freed when its holder is killed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from db.locks import Locks, LockTimeout, holder_gone, holder_id
from db.tables import leases
from index_snapshots.manifest import Manifest
from harness.procs import REPO

LEASE_S = 3.0

HOLDER = """
import sys, time
from db import open_catalog
from db.locks import Locks
from index_snapshots.manifest import Manifest

db = open_catalog(sys.argv[1])
with Locks(db, lease_s=float(sys.argv[2])).hold("build:t"):
    Manifest(db).begin("t", "half", "snap-t-half", None, {})  # a build under way
    print("held", flush=True)
    time.sleep(600)
"""


def test_one_holder_at_a_time_across_threads(catalog_db):
    locks = Locks(catalog_db, lease_s=LEASE_S)
    inside, most, rounds = [0], [0], []
    guard = threading.Lock()

    def work() -> None:
        for _ in range(5):
            with locks.hold("build:t"):
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.01)
                with guard:
                    inside[0] -= 1
                rounds.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and len(rounds) == 20


def test_a_held_lock_times_out_with_a_reason_and_other_names_are_free(catalog_db):
    locks = Locks(catalog_db, lease_s=LEASE_S)
    with locks.hold("build:t"):
        with pytest.raises(LockTimeout, match="build:t is held by"):
            with locks.hold("build:t", timeout=0.3):
                pass
        with locks.hold("build:other", timeout=0):
            pass
    with locks.hold("build:t", timeout=0):  # free again
        pass
    with pytest.raises(ValueError, match="positive"):
        Locks(catalog_db, lease_s=0)


def test_kill_9_of_the_holder_frees_the_lock_and_the_next_build_completes(catalog_url, catalog_db):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, catalog_url, str(LEASE_S)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        locks, manifest = Locks(catalog_db, lease_s=LEASE_S), Manifest(catalog_db)
        with pytest.raises(LockTimeout):
            with locks.hold("build:t", timeout=0.5):
                pass
        proc.kill()
        proc.wait(10)
        # Within the lease (at once on PostgreSQL, whose server drops a dead session's locks; at once too on SQLite
        # for a process of this host that no longer exists).
        with locks.hold("build:t", timeout=LEASE_S + 5):
            assert [s.hash for s in manifest.unfinished()] == ["half"]
            manifest.fail("t", "half", "interrupted: the service stopped during the build")
            manifest.begin("t", "next", "snap-t-next", None, {})
            manifest.finish("t", "next", documents=1, chunks=1, embedded=1, reused=0, seconds=0.1)
            manifest.promote("t", "next")
        assert manifest.live("t").hash == "next" and manifest.get("t", "half").status == "failed"
    finally:
        proc.kill()
        proc.wait(10)


def test_a_lease_of_a_holder_elsewhere_runs_out_then_is_taken(catalog_db):
    """The lease itself (SQLite's build lock, any dialect): a holder on another host that stopped renewing."""
    locks = Locks(catalog_db, lease_s=LEASE_S)
    stranger = "another-host:4026531836:123:t"
    assert not holder_gone(stranger)
    with catalog_db.tx() as conn:
        conn.execute(leases.insert().values(name="build:t", holder=stranger, acquired_at=catalog_db.now(),
                                            expires_at=catalog_db.now() + 1.5))
    with pytest.raises(LockTimeout, match="another-host"):
        with locks._lease("build:t", timeout=0.2):
            pass
    with locks._lease("build:t", timeout=LEASE_S + 5):
        holder = catalog_db.scalar(select(leases.c.holder).where(leases.c.name == "build:t"))
        assert holder != stranger and holder.split(":")[2] == holder_id().split(":")[2]
    assert catalog_db.scalar(select(func.count()).select_from(leases)) == 0  # released


def test_a_lease_is_renewed_while_held(catalog_db):
    locks = Locks(catalog_db, lease_s=1.5)
    with locks._lease("build:t", timeout=0):
        time.sleep(2.5)  # past the first expiry: the renewals keep it
        with pytest.raises(LockTimeout):
            with locks._lease("build:t", timeout=0):
                pass
    assert catalog_db.scalar(select(func.count()).select_from(leases)) == 0
