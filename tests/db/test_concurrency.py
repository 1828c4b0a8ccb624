"""Four processes on one PostgreSQL for 15 s, all on one tenant: they create jobs, race to claim every unsettled job
(each one is a message delivered to every worker), build under the tenant's build lock and promote or roll back
by hand as operators do, while a fifth process polls the live pointer. No job may be lost or ingested twice, no
two builds may overlap, and exactly one snapshot is live at every instant the reader looks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from db import open_catalog
from ingest.jobs import JobStore
from harness.procs import REPO

SECONDS, WORKERS = 15.0, 4

WORKER = r"""
import json, random, sys, time
from db import open_catalog
from db.locks import Locks
from errors import Conflict
from index_snapshots.manifest import Manifest
from index_snapshots.service import build_lock
from ingest.jobs import JobBusy, JobStore, NewDocument
from ingest.phases import JobPhase, JobStatus

url, me, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
db = open_catalog(url)
jobs, manifest, locks = JobStore(db), Manifest(db), Locks(db, lease_s=5)
rng = random.Random(me)
log = open(out, "w")
def note(**event):
    log.write(json.dumps(event) + "\n")
    log.flush()

def ingest_everything():
    todo = jobs.unsettled()
    rng.shuffle(todo)
    for job in todo:
        try:
            with jobs.claimed(job, lease_s=5):
                view = jobs.get(job)
                if view.settled or view.phase is not None and view.phase != JobPhase.PARSING:
                    continue  # ingested by someone else meanwhile
                jobs.start(job)
                with db.tx() as conn:
                    for doc in jobs.pending(job):
                        jobs.mark_document(conn, job, doc.seq, "new", chunks=1)
                jobs.set_phase(job, JobPhase.EMBEDDING, chunks_total=1)
                jobs.add_embedded(job, 1, 1)
                jobs.set_phase(job, JobPhase.AWAITING_BUILD)
                note(kind="ingested", job=job)
        except JobBusy:
            note(kind="claim_conflict", job=job)

def build():
    waited = time.monotonic()
    with locks.hold(build_lock("t")):
        start = time.monotonic_ns()
        note(kind="lock_wait", seconds=time.monotonic() - waited)
        waiting = jobs.awaiting_build("t")
        for job in waiting:
            jobs.set_phase(job, JobPhase.BUILDING)
        snap = f"s{me}-{start}"
        manifest.begin("t", snap, "snap-t-" + snap, None, {})
        time.sleep(rng.uniform(0, 0.05))  # the collection being written
        manifest.finish("t", snap, documents=len(waiting), chunks=1, embedded=1, reused=0, seconds=0.01)
        for job in waiting:
            jobs.set_phase(job, JobPhase.EVALUATING, snapshot=snap)
        manifest.promote("t", snap)
        for job in waiting:
            jobs.finish(job, JobStatus.SUCCEEDED, snapshot=snap)
        note(kind="build", snapshot=snap, jobs=waiting, start=start, end=time.monotonic_ns())

deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for _ in range(rng.randint(0, 3)):
        note(kind="created", job=jobs.create("t", [NewDocument(f"d{me}-{i}", b"x") for i in range(2)]))
    ingest_everything()
    if rng.random() < 0.5:
        build()
    if rng.random() < 0.3:  # an operator by hand, outside the build lock as the API does it
        built = [s.hash for s in manifest.list("t") if s.status in ("candidate", "live", "retired")]
        try:
            if built and rng.random() < 0.7:
                manifest.promote("t", rng.choice(built), action="manual")
                note(kind="promotion")
            else:
                manifest.rollback("t")
                note(kind="rollback")
        except (LookupError, Conflict):  # nothing to roll back to; the chosen one retired meanwhile
            pass
# Drain: whatever is still queued is ingested and built before leaving.
for _ in range(50):
    ingest_everything()
    build()
    if not jobs.unsettled():
        break
    time.sleep(0.2)
note(kind="done")
"""

READER = r"""
import json, os, sys, time
from sqlalchemy import text
from db import Database
db = Database(sys.argv[1])
seconds, out, stop = float(sys.argv[2]), sys.argv[3], sys.argv[4]
# One statement, one snapshot of the database: how many snapshots say live, and what the pointer names.
probe = text("SELECT (SELECT COUNT(*) FROM snapshots WHERE tenant = 't' AND status = 'live'),"
             " (SELECT s.status FROM live l JOIN snapshots s ON s.tenant = l.tenant AND s.hash = l.hash"
             "  WHERE l.tenant = 't')")
polls, bad, seen_live = 0, [], False
deadline = time.monotonic() + seconds
with db.read() as conn:
    # Until the workers have drained (the test makes `stop`); `seconds` is only the backstop.
    while time.monotonic() < deadline and not (polls % 50 == 0 and os.path.exists(stop)):
        live, pointer = conn.execute(probe).one()
        polls += 1
        seen_live = seen_live or pointer is not None
        if seen_live and (live != 1 or pointer != "live"):
            bad.append([live, pointer])
json.dump({"polls": polls, "violations": bad[:20], "violation_count": len(bad)}, open(out, "w"))
"""


def test_four_processes_hammering_one_tenant(postgres, tmp_path):
    url = postgres.create_database()
    open_catalog(url).dispose()  # the schema first: the race under test is the workload's, not the upgrade's
    logs = [tmp_path / f"worker-{i}.jsonl" for i in range(WORKERS)]
    reader_out, stop = tmp_path / "reader.json", tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, url, str(SECONDS + 240), str(reader_out), str(stop)],
                              cwd=REPO)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(i), str(SECONDS), str(log)], cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for i, log in enumerate(logs)]
    errors = [w.communicate(timeout=SECONDS + 240)[1] for w in workers]
    stop.touch()
    assert [w.returncode for w in workers] == [0] * WORKERS, [e[-3000:] for e in errors]
    assert reader.wait(timeout=SECONDS + 60) == 0

    events = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    kinds = Counter(e["kind"] for e in events)
    created = [e["job"] for e in events if e["kind"] == "created"]
    ingested = Counter(e["job"] for e in events if e["kind"] == "ingested")
    builds = sorted((e for e in events if e["kind"] == "build"), key=lambda e: e["start"])
    settled_by = Counter(j for b in builds for j in b["jobs"])

    assert kinds["done"] == WORKERS and len(created) > 20 and len(builds) > 10
    # No job lost, none ingested twice, each settled by exactly one build.
    assert sorted(ingested) == sorted(created) and set(ingested.values()) == {1}
    assert sorted(settled_by) == sorted(created) and set(settled_by.values()) == {1}
    store = JobStore(db := open_catalog(url))
    try:
        views = [store.get(j) for j in created]
        assert {(v.status, v.attempts) for v in views} == {("succeeded", 1)} and store.unsettled() == []
    finally:
        db.dispose()
    # Never two builds at once.
    overlaps = [(a["snapshot"], b["snapshot"]) for a, b in zip(builds, builds[1:]) if b["start"] < a["end"]]
    assert overlaps == []
    reader_result = json.loads(reader_out.read_text())
    assert reader_result["polls"] > 100 and reader_result["violation_count"] == 0, reader_result
    print(f"\nconcurrency on PostgreSQL, {WORKERS} processes x {SECONDS:.0f} s: {len(created)} jobs created, "
          f"{sum(ingested.values())} ingested (each once), {len(builds)} builds (none overlapping), "
          f"{len(builds) + kinds['promotion']} promotions ({kinds['promotion']} by hand) and {kinds['rollback']} "
          f"rollbacks, {kinds['claim_conflict']} claim conflicts, {reader_result['polls']} reader polls with 0 "
          f"moments of no or two live snapshots")
