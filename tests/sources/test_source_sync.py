"""A source's sync in process (the deterministic embedder, a folder source): what it counts, what it records, how it
resumes after its process died, the lock that keeps two runs apart, "the later change wins" for access lists, and
the checks that keep a tenant's source inside what the operator allows."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from db.locks import Locks
from wire.ids import MAX_ID_CHARS, id_problem
from sources import schedule
from sources.connectors import base
from sources.connectors.base import Limits, SourceError, selected
from sources.kinds import KINDS, checked
from sources.sync import desired_access, document_id, source_lock
from harness.helpers import make_runtime


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """One runtime for the module (its parse child starts once); each test has its own folder and source."""
    tmp = tmp_path_factory.mktemp("sources")
    rt = make_runtime(tmp, source_folder_roots=[tmp / "shared"])
    rt.shared = tmp / "shared"
    yield rt
    rt.close()


@pytest.fixture
def rt(runtime):
    batch, wait = runtime.syncer.batch_items, runtime.syncer.lock_wait_s
    yield runtime
    runtime.syncer.batch_items, runtime.syncer.lock_wait_s = batch, wait


@pytest.fixture
def folder(rt, request) -> Path:
    d = rt.shared / request.node.name
    for i in range(6):
        write(d, f"page{i}.txt", f"Page {i} explains the procedure number {i} in plain words.")
    return d


def add_source(rt, folder: Path, access=None, **config) -> str:
    return rt.sources.create("default", folder.name, "folder", {"path": str(folder), **config}, {}, None,
                             {"team": "hr"}, access, None).id


def sync(rt, source_id: str) -> dict:
    sync_id = rt.syncer.start("default", source_id)
    assert rt.syncer.run(sync_id) in ("succeeded", "failed")
    s = rt.sources.sync(sync_id)
    return {"status": s.status, **s.counts, "error": s.error, "failures": s.failures, "jobs": s.job_ids}


def test_a_sync_counts_and_ingests_only_what_changed(rt, folder):
    sid = add_source(rt, folder)
    first = sync(rt, sid)
    assert (first["status"], first["listed"], first["new"], first["unchanged"]) == ("succeeded", 6, 6, 0)
    doc = rt.catalog.get_document("default", f"{sid}:page1.txt")
    assert doc.metadata["source_id"] == sid and doc.metadata["team"] == "hr"
    assert doc.metadata["source_uri"] == (folder / "page1.txt").as_uri() and doc.metadata["source_modified"]

    again = sync(rt, sid)  # nothing changed: nothing read, no job
    assert (again["unchanged"], again["jobs"]) == (6, [])

    os.utime(folder / "page0.txt")  # a new mtime, the same bytes: read, found unchanged, not ingested
    write(folder, "page1.txt", "Page 1 now explains another procedure entirely.")
    write(folder, "sub/new.txt", "A page nobody has seen before.")
    (folder / "page2.txt").unlink()
    (folder / "page3.txt").rename(folder / "page3-renamed.txt")
    write(folder, "notes.bin", "not a type the service parses: left out by the default include")
    second = sync(rt, sid)
    counts = {k: second[k] for k in ("listed", "new", "changed", "unchanged", "deleted", "failed")}
    assert counts == {"listed": 6, "new": 2, "changed": 1, "unchanged": 3, "deleted": 2, "failed": 0}
    assert len(second["jobs"]) == 1
    job = rt.jobs.get(second["jobs"][0])
    # Only the edited page and the new one reach the model; the renamed page's chunks come from the cache.
    changed = rt.catalog.get_document("default", f"{sid}:page1.txt").chunk_hashes
    new = rt.catalog.get_document("default", f"{sid}:sub/new.txt").chunk_hashes
    assert job.chunks_embedded == len(set(changed) | set(new))
    assert rt.catalog.get_document("default", f"{sid}:page2.txt").status == "deleted"
    assert rt.catalog.get_document("default", f"{sid}:page3.txt").status == "deleted"
    assert rt.catalog.get_document("default", f"{sid}:page3-renamed.txt").status == "indexed"
    assert rt.catalog.get_document("default", f"{sid}:notes.bin") is None
    # A document deleted by hand comes back at the next sync (the source is the truth).
    rt.catalog.mark_deleted("default", f"{sid}:page4.txt")
    back = sync(rt, sid)
    assert (back["changed"], back["unchanged"]) == (1, 5)
    assert rt.catalog.get_document("default", f"{sid}:page4.txt").status == "indexed"


def test_an_item_that_fails_is_reported_and_tried_again(rt, folder):
    sid = add_source(rt, folder)
    (folder / "broken.txt").write_bytes(b"\x00\x01\x02 binary \x00 garbage" * 50)
    first = sync(rt, sid)
    assert (first["status"], first["new"], first["failed"]) == ("succeeded", 6, 1)
    assert first["failures"][0]["item"] == "broken.txt" and "unsupported file type" in first["failures"][0]["reason"]
    assert sync(rt, sid)["failed"] == 1  # tried again
    write(folder, "broken.txt", "Fixed at last: plain words.")
    fixed = sync(rt, sid)
    assert (fixed["new"], fixed["failed"], fixed["unchanged"]) == (1, 0, 6)


def test_an_unreachable_source_fails_the_sync_and_deletes_nothing(rt, folder):
    sid = add_source(rt, folder)
    sync(rt, sid)
    away = folder.with_name(folder.name + "-away")
    folder.rename(away)
    failed = sync(rt, sid)
    assert failed["status"] == "failed" and "is not there" in failed["error"] and failed["deleted"] == 0
    assert rt.catalog.get_document("default", f"{sid}:page1.txt").status == "indexed"
    assert rt.sources.held(sid) == 6
    away.rename(folder)
    back = sync(rt, sid)
    assert (back["status"], back["unchanged"], back["deleted"]) == ("succeeded", 6, 0)


class Died(BaseException):
    """The process died mid-sync: nothing after it runs (not an Exception: no handler records a failure)."""


def test_a_sync_whose_process_died_resumes_and_counts_the_whole(rt, folder, monkeypatch):
    sid = add_source(rt, folder)
    rt.syncer.batch_items = 2
    reads = []
    real = KINDS["folder"].open

    def dying(config, limits, source_id):
        session = real(config, limits, source_id)
        read = session.read

        def read_until_the_fifth(item):
            reads.append(item.key)
            if len(reads) == 5:
                raise Died()
            return read(item)

        session.read = read_until_the_fifth
        return session

    monkeypatch.setitem(KINDS, "folder", replace(KINDS["folder"], open=dying))
    sync_id = rt.syncer.start("default", sid)
    with pytest.raises(Died):
        rt.syncer.run(sync_id)
    assert rt.sources.sync(sync_id).status == "running" and rt.sources.held(sid) == 4  # two batches went in
    assert rt.syncer.interrupted() == [sync_id]  # its lock is free: the next start enqueues it again
    monkeypatch.setitem(KINDS, "folder", replace(KINDS["folder"], open=real))
    assert rt.syncer.run(sync_id) == "succeeded"
    s = rt.sources.sync(sync_id)
    assert (s.counts["new"], s.counts["unchanged"], s.attempts) == (6, 0, 2)
    assert rt.sources.held(sid) == 6


def test_two_runs_of_a_source_never_overlap(rt, folder):
    sid = add_source(rt, folder)
    sync_id = rt.syncer.start("default", sid)
    with pytest.raises(Exception) as running:
        rt.syncer.start("default", sid)
    assert running.value.sync_id == sync_id  # the catalog lets one sync per source be running
    # Another host holding the source's lock (the same catalog, its own Locks): this run waits, then leaves it.
    other = Locks(rt.db, lease_s=5)
    rt.syncer.lock_wait_s = 0.3
    held, release = threading.Event(), threading.Event()

    def hold():
        with other.hold(source_lock(sid)):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        assert rt.syncer.run(sync_id) is None
        assert rt.sources.sync(sync_id).status == "running" and rt.syncer.interrupted() == []
    finally:
        release.set()
        t.join(10)
    assert rt.syncer.run(sync_id) == "succeeded"
    assert rt.syncer.run(sync_id) == "succeeded"  # a duplicate message: nothing done twice
    assert rt.sources.sync(sync_id).attempts == 1


def test_the_later_access_change_wins(rt, folder):
    sid = add_source(rt, folder, access={"users": [], "groups": ["staff"]})
    sync(rt, sid)
    staff = {"users": [], "groups": ["staff"]}
    assert rt.catalog.get_document("default", f"{sid}:page1.txt").access == staff
    # A document's own list, set after the sync wrote it: kept by the next syncs, also when its file changes.
    bob = {"users": ["bob"], "groups": []}
    assert rt.access_sync.change("default", f"{sid}:page1.txt", bob)
    write(folder, "page1.txt", "Rewritten: page 1 is about the new procedure.")
    assert sync(rt, sid)["changed"] == 1
    assert rt.catalog.get_document("default", f"{sid}:page1.txt").access == bob
    assert sync(rt, sid)["unchanged"] == 6
    assert rt.catalog.get_document("default", f"{sid}:page1.txt").access == bob
    # The source's list changed after that: it is the later change, for every document of the source.
    ops = {"users": [], "groups": ["ops"]}
    rt.sources.update("default", sid, {"access": ops})
    assert sync(rt, sid)["unchanged"] == 6  # a payload change only: nothing re-ingested
    for i in range(6):
        assert rt.catalog.get_document("default", f"{sid}:page{i}.txt").access == ops


def test_desired_access_by_the_later_change():
    class Src:
        access, access_rev = {"users": [], "groups": ["a"]}, 1

    from sources.store import ItemRow

    written = json.dumps(Src.access, sort_keys=True)
    row = ItemRow("k", "d", access_rev=1, access_written=written)
    assert desired_access(Src, None, None) == (Src.access, False)  # a new item
    assert desired_access(Src, row, ("indexed", written)) == (Src.access, False)
    own = {"users": ["bob"], "groups": []}
    assert desired_access(Src, row, ("indexed", json.dumps(own))) == (own, True)
    row.access_rev = 0  # the source's list changed since the item was written: the source's wins
    assert desired_access(Src, row, ("indexed", json.dumps(own))) == (Src.access, False)


def test_document_ids_fit_whatever_the_key():
    assert document_id("src_1", "docs/a.md") == "src_1:docs/a.md"
    long_key = "deep/" * 200 + "file.md"
    made = document_id("src_1", long_key)
    assert id_problem(made) is None and len(made) <= MAX_ID_CHARS and made.startswith("src_1:deep/")
    assert made != document_id("src_1", long_key + "x")  # the hash of the whole key tells them apart
    control = document_id("src_1", "odd\nname.md")
    assert id_problem(control) is None and control.startswith("src_1:odd name.md~")


def test_globs_and_the_default_include():
    assert selected("a/b/report.PDF", None, []) and not selected("a/image.png", None, [])
    assert selected("a/b.md", ["*.md"], []) and selected("b.md", ["**/*.md"], [])
    assert not selected("drafts/b.md", ["*.md"], ["drafts/*"])


def test_schedules():
    assert schedule.parse("*/30 * * * *", 60) == {"cron": "*/30 * * * *"}
    assert schedule.parse({"every_s": 90}, 60) == {"every_s": 90}
    for bad in ("* * *", "61 * * * *", {"every_s": 5}, {"every": 90}, 7):
        with pytest.raises(ValueError):
            schedule.parse(bad, 60)
    assert schedule.next_time({"every_s": 90}, 1000.0) == 1090.0
    assert 0 < schedule.next_time({"cron": "*/30 * * * *"}, 1_800_000_000.0) - 1_800_000_000.0 <= 1800


def test_scheduled_syncs_start_when_due_and_once(rt, folder):
    sid = add_source(rt, folder)
    rt.sources.update("default", sid, {"schedule": {"every_s": 60}, "next_sync_at": 100.0})
    started = rt.syncer.tick(now=150.0)
    assert len(started) == 1 and rt.syncer.tick(now=150.0) == []  # running: not started twice
    assert rt.sources.by_id(sid).next_sync_at == 210.0
    rt.syncer.run(started[0])
    assert rt.syncer.tick(now=200.0) == [] and len(rt.syncer.tick(now=211.0)) == 1


def test_what_a_tenant_may_point_a_source_at(tmp_path):
    inside = tmp_path / "root" / "docs"
    inside.mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (inside / "escape").symlink_to(tmp_path / "secret")
    limits = Limits(folder_roots=(tmp_path / "root",))
    checked(KINDS["folder"], {"path": str(inside)}, limits)
    for path, why in ((str(tmp_path / "secret"), "outside the folders"),
                      (str(inside / "escape"), "outside the folders"), ("docs", "must be absolute")):
        with pytest.raises(SourceError, match=why):
            checked(KINDS["folder"], {"path": path}, limits)
    with pytest.raises(SourceError, match="SNAPDEX_SOURCE_FOLDER_ROOTS"):
        checked(KINDS["folder"], {"path": str(inside)}, Limits())
    # Private addresses: refused unless the operator allows them, as for webhooks.
    for kind, config in (("web", {"url": "http://127.0.0.1:9/docs/"}),
                         ("s3", {"bucket": "docs", "endpoint_url": "http://169.254.169.254/"}),
                         ("git", {"url": "https://localhost/repo.git"})):
        with pytest.raises(SourceError, match="SNAPDEX_SOURCE_ALLOW_PRIVATE"):
            checked(KINDS[kind], config, Limits())
        checked(KINDS[kind], config, Limits(allow_private=True))
    for url in ("ssh://git@example.com/repo.git", "ext::sh -c touch% /tmp/pwned", "git://example.com/r"):
        with pytest.raises(SourceError, match="only https"):
            checked(KINDS["git"], {"url": url}, Limits(allow_private=True))
    with pytest.raises(SourceError, match="credentials"):
        checked(KINDS["git"], {"url": "https://user:pw@example.com/r.git"}, Limits(allow_private=True))
    with pytest.raises(SourceError, match="go together"):
        checked(KINDS["s3"], {"bucket": "docs", "access_key_id": "AKIA"}, Limits())
    assert base.FILE_TYPES  # the default include is the folder ingest's list
