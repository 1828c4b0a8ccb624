"""The job store on SQLite and PostgreSQL: staging, progress, the phase rules, claims that outlive no holder."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update

from db.tables import jobs as jobs_table
from ingest.catalog import Catalog, DocumentRow
from ingest.jobs import JobBusy, JobStore, NewDocument
from ingest.phases import TRANSITIONS, InvalidTransition, JobPhase, JobStatus, check


@pytest.fixture
def store(catalog_db):
    return JobStore(catalog_db)


def docs(n: int = 3) -> list[NewDocument]:
    return [NewDocument(f"d{i}", f"text {i}".encode(), {"i": i}, filename="f.txt" if i == 0 else None)
            for i in range(n)]


def test_a_job_is_staged_worked_and_settled(store, catalog_db):
    job = store.create("acme", docs())
    view = store.get(job)
    assert view.status == JobStatus.QUEUED and view.phase is None and view.docs_total == 3 and view.docs_done == 0
    assert store.tenant_of(job) == "acme" and store.unsettled() == [job] and store.ingesting("acme")
    staged = list(store.pending(job))
    assert [(s.seq, s.doc_id, s.payload, s.metadata, s.is_file) for s in staged] == [
        (0, "d0", b"text 0", {"i": 0}, True), (1, "d1", b"text 1", {"i": 1}, False),
        (2, "d2", b"text 2", {"i": 2}, False)]

    store.start(job)
    catalog = Catalog(catalog_db)
    with catalog_db.tx() as conn:
        catalog.put_document(conn, DocumentRow("acme", "d0", "indexed", "c", "r", None, "T0",
                                               chunk_hashes=["h1", "h2"]))
        store.mark_document(conn, job, 0, "new", chunks=2)
        store.mark_document(conn, job, 1, "failed", reason="no text could be extracted")
    assert [s.seq for s in store.pending(job)] == [2]  # a redelivery skips what was done
    with pytest.raises(ValueError, match="outcome"):
        with catalog_db.tx() as conn:
            store.mark_document(conn, job, 2, "exploded")
    store.set_phase(job, JobPhase.EMBEDDING, chunks_total=2)
    store.add_embedded(job, done=2, embedded=1)
    assert store.chunk_titles(job) == {"h1": "T0", "h2": "T0"}
    store.set_phase(job, JobPhase.AWAITING_BUILD)
    assert not store.ingesting("acme") and store.awaiting_build("acme") == [job]
    store.set_phase(job, JobPhase.BUILDING)
    store.finish(job, JobStatus.SUCCEEDED, snapshot="s1")

    view = store.get(job)
    assert (view.status, view.phase, view.snapshot, view.attempts) == ("succeeded", "done", "s1", 1)
    assert (view.chunks_total, view.chunks_done, view.chunks_embedded, view.chunks_reused) == (2, 2, 1, 1)
    assert view.counts["new"] == 1 and view.counts["failed"] == 1 and view.docs_done == 2
    assert view.failures == [{"doc_id": "d1", "filename": None, "reason": "no text could be extracted"}]
    assert view.started_at <= view.finished_at and store.unsettled() == []
    assert [(s.seq, s.payload) for s in store.pending(job)] == [(2, b"")]  # staged bytes cleared once settled
    stats = store.stats()["acme"]
    assert stats["jobs"] == {"succeeded": 1} and stats["embedded"] == 1 and stats["reused"] == 1
    assert stats["failed_documents"] == 1


def test_phases_follow_the_transitions_and_say_what_is_allowed(store):
    job = store.create("acme", docs(1))
    with pytest.raises(InvalidTransition, match="queued cannot go to building; allowed: done, parsing"):
        store.set_phase(job, JobPhase.BUILDING)
    store.start(job)
    with pytest.raises(InvalidTransition, match="parsing cannot go to evaluating"):
        store.set_phase(job, JobPhase.EVALUATING)
    store.set_phase(job, JobPhase.EMBEDDING)
    store.start(job)  # redelivered after its worker died: parsing again, a second attempt
    assert store.get(job).attempts == 2 and store.get(job).phase == "parsing"
    with pytest.raises(ValueError, match="unknown job fields"):
        store.set_phase(job, JobPhase.EMBEDDING, status="hacked")
    with pytest.raises(InvalidTransition, match="finish"):
        store.set_phase(job, JobPhase.DONE)
    store.finish(job, JobStatus.FAILED, error="boom")
    with pytest.raises(InvalidTransition, match="done cannot go to parsing; allowed: nothing"):
        store.start(job)
    with pytest.raises(InvalidTransition):
        store.finish(job, JobStatus.SUCCEEDED)  # a settled job stays as it settled
    with pytest.raises(ValueError, match="must be 'succeeded' or 'failed'"):
        store.finish(job, JobStatus.RUNNING)
    assert store.get(job).error == "boom" and store.get(job).status == "failed"
    with pytest.raises(KeyError):
        store.start("nope")


def test_the_transition_table_is_closed():
    every = {None, *JobPhase}
    assert set(TRANSITIONS) == every
    assert all(nxt <= set(JobPhase) for nxt in TRANSITIONS.values())
    assert TRANSITIONS[JobPhase.DONE] == frozenset()
    for current, nexts in TRANSITIONS.items():  # every phase but done can fail its job
        assert current == JobPhase.DONE or JobPhase.DONE in nexts
    check(JobPhase.EVALUATING, JobPhase.BUILDING)  # a build that died mid-evaluation is taken up again


def test_a_claim_keeps_a_second_delivery_out_until_its_holder_lets_go_or_dies(store, catalog_db):
    job = store.create("acme", docs(1))
    assert store.claim(job, "host-a:ns:1:t1", lease_s=30)
    assert not store.claim(job, "host-b:ns:2:t2", lease_s=30)  # another host: its claim is live
    assert store.claim(job, "host-a:ns:1:t1", lease_s=30)  # the holder itself may renew by claiming
    assert store.unsettled(unclaimed=True) == [] and store.unsettled() == [job]
    # A claim whose lease ran out (its holder stopped renewing) is taken over.
    with catalog_db.tx() as conn:
        conn.execute(update(jobs_table).where(jobs_table.c.id == job).values(claim_expires_at=0))
    assert store.unsettled(unclaimed=True) == [job]
    assert store.claim(job, "host-b:ns:2:t2", lease_s=30)
    store.release_claim(job, "host-a:ns:1:t1")  # not the holder any more: changes nothing
    assert not store.claim(job, "host-c:ns:3:t3", lease_s=30)
    store.release_claim(job, "host-b:ns:2:t2")
    assert store.claim(job, "host-c:ns:3:t3", lease_s=30)
    with pytest.raises(KeyError):
        store.claim("nope", "h", 30)


def test_the_claim_of_a_dead_process_on_this_host_is_taken_at_once(store):
    import subprocess
    import sys

    from db.locks import holder_id

    job = store.create("acme", docs(1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = holder_id().split(":")
    ghost = ":".join([mine[0], mine[1], dead.stdout.strip(), "t0"])  # this host, a process that has exited
    assert store.claim(job, ghost, lease_s=3600)
    assert store.unsettled(unclaimed=True) == [job]
    assert store.claim(job, holder_id(), lease_s=30)


def test_claimed_renews_in_the_background_and_releases(store):
    job = store.create("acme", docs(1))
    with store.claimed(job, lease_s=1.5) as holder:
        with pytest.raises(JobBusy):
            with store.claimed(job, lease_s=1.5):
                pass
        time.sleep(2.5)  # past the lease: only the renewals keep it
        assert not store.claim(job, "elsewhere:ns:1:t", lease_s=30)
        assert holder
    assert store.claim(job, "elsewhere:ns:1:t", lease_s=30)


def test_racing_claimers_get_one_claim(store):
    job = store.create("acme", docs(1))
    winners, barrier = [], threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        if store.claim(job, f"host-{i}:ns:{i}:t", lease_s=30):
            winners.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_discard_forgets_a_job_that_never_queued(store):
    job = store.create("acme", docs(2))
    store.discard(job)
    assert store.get(job) is None and list(store.pending(job)) == [] and not store.ingesting("acme")
    with pytest.raises(ValueError, match="at least one document"):
        store.create("acme", [])


def test_the_build_debounce_counts_from_the_newest_arrival(store):
    assert store.build_delay("acme", 2.0) == 2.0  # no job yet: the whole debounce
    store.create("acme", docs(1))
    newest = store.get(store.create("acme", docs(1))).created_at
    # A job ending 0.5 s after the newest arrival waits out the rest; one ending a minute later asks at once.
    assert store.build_delay("acme", 2.0, now=newest + 0.5) == pytest.approx(1.5)
    assert store.build_delay("acme", 2.0, now=newest + 60) == 0.0
    assert store.build_delay("acme", 0.0, now=newest) == 0.0
    # Another tenant's newer job does not hold this one's build back.
    other = store.get(store.create("other", docs(1))).created_at
    assert store.build_delay("acme", 2.0, now=other + 60) == 0.0 and store.build_delay("other", 2.0, now=other) == 2.0
