"""Snapshots: hashing, no-op rebuilds, promote and rollback under load, crashes mid-build, retention, deletes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from errors import Conflict, NotFound
from harness.helpers import embedded_texts, ingest, make_runtime, text_doc
from index_snapshots.builder import DENSE_KEY
from store.common import DenseIndex
from snapdex.settings import Settings
from harness.procs import REPO, wait_until

DOCS = {
    f"d{i}": " ".join(f"Document {i} sentence {j} mentions topic{(i * 7 + j) % 23} and item{j % 5}." for j in range(25))
    for i in range(12)
}


def docs(**changes):
    merged = {**DOCS, **changes}
    return [text_doc(k, v) for k, v in merged.items() if v is not None]


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path / "a")
    yield runtime
    runtime.close()


def test_same_input_same_hash_and_rebuild_is_a_noop(rt, tmp_path):
    first = ingest(rt, docs())
    other = make_runtime(tmp_path / "b")
    try:
        assert ingest(other, list(reversed(docs()))).snapshot == first.snapshot
    finally:
        other.close()
    again = rt.snapshots.rebuild("default")
    assert again.built is False and again.hash == first.snapshot
    assert len(rt.manifest.list("default")) == 1


def test_one_changed_document_embeds_only_its_chunks(rt):
    first = ingest(rt, docs())
    before = rt.embedder.texts_embedded
    second = ingest(rt, docs(d3="A brand new text about volcanoes and lava flows in Iceland. " * 3))
    assert second.snapshot != first.snapshot
    snap = rt.manifest.get("default", second.snapshot)
    assert snap.embedded == len(rt.catalog.get_document("default", "d3").chunk_hashes)
    # The model saw those chunks and their sentence windows, nothing else.
    assert rt.embedder.texts_embedded - before == len(embedded_texts(rt, "default", "d3"))
    assert snap.reused == snap.chunks - snap.embedded and snap.parent == first.snapshot


def test_promote_and_rollback_under_concurrent_retrieval(rt):
    v1 = ingest(rt, docs()).snapshot
    v2 = ingest(rt, docs(d0="Volcanoes erupt lava; topic0 item0 appear too. " * 4)).snapshot
    chunks = {
        h: {p.id for p in rt.store.scroll(rt.manifest.get("default", h).collection, limit=10_000)[0]} for h in (v1, v2)
    }
    errors, answers = [], []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                snap = rt.resolver.resolve("default")
                hits = rt.pipeline.run(snap.collection, "topic0 item0 lava", 5, rt.pipeline.stages()).hits
                answers.append(snap.hash)
                if not {h.id for h in hits} <= chunks[snap.hash]:
                    errors.append(f"hits outside snapshot {snap.hash}")
            except Exception as e:  # any failure during a switch is a bug
                errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    rounds, deadline = 0, time.monotonic() + 120
    # Switch for as long as it takes the readers to answer many times across the switches.
    while rounds < 20 or (len(answers) < 40 and time.monotonic() < deadline):
        assert rt.snapshots.rollback("default") == (v2, v1)
        assert rt.snapshots.promote("default", v2) == v1
        rounds += 1
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert set(answers) <= {v1, v2} and len(answers) > 20
    assert rt.manifest.live("default").hash == v2


def test_rollback_without_history_and_bad_promote(rt):
    v1 = ingest(rt, docs()).snapshot
    with pytest.raises(Conflict, match="no previous"):  # a 409
        rt.snapshots.rollback("default")
    with pytest.raises(NotFound):  # a 404
        rt.snapshots.promote("default", "0" * 64)
    assert rt.manifest.live("default").hash == v1


def test_retention_keeps_live_previous_pinned_and_newest(rt):
    rt.snapshots.keep_extra = 1
    hashes = [ingest(rt, docs(d1=f"Version {n} of the changing document. " * 5)).snapshot for n in range(6)]
    by_hash = {s.hash: s for s in rt.manifest.list("default")}
    live, previous = hashes[-1], hashes[-2]
    assert by_hash[live].status == "live" and by_hash[previous].status == "retired"
    assert by_hash[hashes[-3]].status == "retired"  # the one extra kept
    for h in hashes[:-3]:
        assert by_hash[h].status == "deleted"
        assert not rt.store.has_collection(by_hash[h].collection)


def test_retention_spares_a_pinned_snapshot(rt):
    rt.snapshots.keep_extra = 0
    old = ingest(rt, docs()).snapshot
    rt.resolver.resolve("default", old)  # a pinned request reads it
    for n in range(3):
        ingest(rt, docs(d2=f"Edition {n} of document two. " * 5))
    assert rt.manifest.get("default", old).status == "retired"
    assert rt.store.has_collection(rt.manifest.get("default", old).collection)
    deleted = rt.snapshots.retain("default", now=rt.manifest.get("default", old).last_read_at + 10_000)
    assert old in deleted


def test_delete_document_rebuilds_with_exact_bm25(rt, tmp_path):
    ingest(rt, docs())
    assert rt.catalog.mark_deleted("default", "d5")
    after = rt.snapshots.rebuild("default")
    assert rt.store.count(after.collection, filters={"doc_ids": "d5"}) == 0
    # The same documents built from scratch elsewhere: identical BM25 scores (IDF and avgdl of this snapshot).
    fresh = make_runtime(tmp_path / "fresh")
    try:
        ref = ingest(fresh, docs(d5=None)).snapshot
        stages = rt.pipeline.stages()
        ours = rt.pipeline.run(after.collection, "topic3 item2", 10, stages, dense=False).hits
        theirs = fresh.pipeline.run(fresh.manifest.get("default", ref).collection, "topic3 item2", 10, stages,
                                    dense=False).hits
        assert [(h.id, round(h.score, 5)) for h in ours] == [(h.id, round(h.score, 5)) for h in theirs]
        assert after.hash == ref
    finally:
        fresh.close()


def test_config_change_forces_a_full_build_and_old_live_serves_until_then(rt, tmp_path):
    v1 = ingest(rt, docs()).snapshot
    rt.close()
    changed = make_runtime(tmp_path / "a", chunk_size=48, chunk_overlap=4)
    try:
        assert changed.config_drift() == {"default": ["chunker"]}
        assert changed.resolver.resolve("default").hash == v1  # still serving the old one
        result = changed.snapshots.rebuild("default")
        assert result.built and result.hash != v1
        assert changed.manifest.live("default").hash == result.hash
        assert changed.config_drift() == {}
        assert result.embedded > 0  # new chunk boundaries: new chunks
    finally:
        changed.close()


def test_vectors_default_to_turbo8_embedded_and_an_index_of_the_float16_release_is_rebuilt_from_the_cache(tmp_path):
    # The release before stored vectors as float16. Its index still serves after the upgrade; the new default is a
    # config drift ("vectors"), and the rebuild takes every vector from the embedding cache: nothing is embedded.
    before = make_runtime(tmp_path / "a", vector_datatype="float16")
    try:
        v1 = ingest(before, docs()).snapshot
        assert before.manifest.live("default").config["vectors"] == "float16"
    finally:
        before.close()
    after = make_runtime(tmp_path / "a")
    try:
        assert after.settings.vector_storage == "turbo8"
        assert after.config_drift() == {"default": ["vectors"]}
        assert after.resolver.resolve("default").hash == v1
        result = after.snapshots.rebuild("default")
        assert result.built and result.hash != v1 and result.embedded == 0
        assert after.manifest.live("default").config["vectors"] == "turbo8"
        hits = after.pipeline.run(after.manifest.live("default").collection, "topic3 item2", 5,
                                  after.pipeline.stages()).hits
        assert hits
    finally:
        after.close()
    # A Qdrant server keeps float16 unless told: its turbo8 is not checked on this machine (no Docker engine).
    assert Settings(store_backend="qdrant", qdrant_url="http://qdrant:6333").vector_storage == "float16"
    assert Settings(store_backend="qdrant", vector_datatype="turbo8").vector_storage == "turbo8"


def test_a_snapshot_from_the_dense_index_threshold_on_walks_a_graph_and_crossing_it_is_a_config_drift(tmp_path):
    # Under the threshold (the default's is far above a test's size) the exact scan, hashed as before the graph
    # existed; a threshold the snapshot reaches is a drift ("dense"), its rebuild takes every vector from the
    # embedding cache and records the graph, and at this size its answers are the exact scan's.
    before = make_runtime(tmp_path / "a")
    try:
        v1 = ingest(before, docs()).snapshot
        live = before.manifest.live("default")
        assert DENSE_KEY not in live.config and before.store.dense_index(live.collection) is None
        exact = before.pipeline.run(live.collection, "topic3 item2", 10, before.pipeline.stages()).hits
    finally:
        before.close()
    after = make_runtime(tmp_path / "a", dense_index_threshold=live.chunks)
    try:
        assert after.config_drift() == {"default": ["dense"]}
        result = after.snapshots.rebuild("default")
        assert result.built and result.hash != v1 and result.embedded == 0
        graph = after.manifest.live("default")
        assert graph.config[DENSE_KEY] == DenseIndex().canonical()
        assert after.store.dense_index(graph.collection) == DenseIndex()
        assert after.config_drift() == {}
        hits = after.pipeline.run(graph.collection, "topic3 item2", 10, after.pipeline.stages()).hits
        assert [(h.id, round(h.score, 4)) for h in hits] == [(h.id, round(h.score, 4)) for h in exact]
    finally:
        after.close()
    exact_again = make_runtime(tmp_path / "a", dense_index="exact")
    try:
        assert exact_again.config_drift() == {"default": ["dense"]}
    finally:
        exact_again.close()


CRASHING_BUILD = """
import sys, time
from encoders.dense import HashEmbedder
from snapdex.runtime import Runtime
from snapdex.settings import Settings

class Slow(HashEmbedder):  # every model call slow, so the build is caught half way
    def embed(self, texts):
        time.sleep(0.3)
        return super().embed(texts)

    def embed_spans(self, texts, spans):
        time.sleep(0.3)
        return super().embed_spans(texts, spans)

rt = Runtime(Settings(data_dir=sys.argv[1], chunk_size=48, chunk_overlap=4), embedder=Slow(dim=32))
rt.builder.batch_size = 4
rt.snapshots.rebuild("default")
"""


def test_killed_mid_build_marks_failed_and_live_is_untouched(rt, tmp_path):
    v1 = ingest(rt, docs()).snapshot
    data = rt.settings.data_dir
    rt.close()  # the embedded engine allows one process per folder
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_BUILD, str(data)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    from index_snapshots.manifest import Manifest
    from db import Database

    manifest = Manifest(Database(data / "catalog.sqlite3"))
    wait_until(lambda: any(s.status == "building" for s in manifest.list("default")), 60, "the build to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    restarted = make_runtime(tmp_path / "a")
    try:
        requeue = restarted.recover()
        assert requeue == []
        statuses = {s.hash: s for s in restarted.manifest.list("default")}
        broken = [s for s in statuses.values() if s.hash != v1]
        assert len(broken) == 1 and broken[0].status == "failed" and "interrupted" in broken[0].reason
        assert not restarted.store.has_collection(broken[0].collection)
        live = restarted.manifest.live("default")
        assert live.hash == v1 and restarted.store.count(live.collection) == live.chunks
    finally:
        restarted.close()


def test_debounced_build_waits_for_every_ingesting_job_then_settles_them_all(rt):
    from index_snapshots.service import run_ingest_job

    first = rt.jobs.create("default", docs()[:6])
    second = rt.jobs.create("default", docs()[6:])
    assert run_ingest_job(rt.ingestor, rt.jobs, first) == "default"
    # The second job is still queued: a build now would be stale at once, so the trigger skips.
    assert rt.snapshots.build_pending("default") is None
    assert rt.jobs.get(first).phase == "awaiting_build" and rt.jobs.get(first).status == "running"
    assert run_ingest_job(rt.ingestor, rt.jobs, second) == "default"
    result = rt.snapshots.build_pending("default")
    assert result is not None and len(rt.manifest.list("default")) == 1
    for job_id in (first, second):
        view = rt.jobs.get(job_id)
        assert view.status == "succeeded" and view.snapshot == result.hash
    assert result.documents == 12


def test_redelivered_ingest_message_after_ingest_only_triggers_the_build(rt):
    from index_snapshots.service import run_ingest_job

    job_id = rt.jobs.create("default", docs()[:3])
    assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"
    embedded = rt.embedder.texts_embedded
    assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"  # the same message, delivered again
    view = rt.jobs.get(job_id)
    assert view.attempts == 1 and view.phase == "awaiting_build" and rt.embedder.texts_embedded == embedded


def test_job_that_finishes_during_another_build_gets_its_own_build(rt):
    from index_snapshots.service import run_ingest_job

    first = rt.jobs.create("default", docs()[:6])
    run_ingest_job(rt.ingestor, rt.jobs, first)
    rt.jobs.set_phase(first, "building")  # another worker is building for the first job right now
    second = rt.jobs.create("default", docs()[6:])
    run_ingest_job(rt.ingestor, rt.jobs, second)
    result = rt.snapshots.build_pending("default")  # the second job's trigger must not be skipped
    assert result is not None and result.documents == 12
    assert rt.jobs.get(second).status == "succeeded" and rt.jobs.get(second).snapshot == result.hash


def test_transient_build_failure_leaves_jobs_waiting_for_the_retry(rt, monkeypatch):
    from index_snapshots.service import run_ingest_job
    from store.base import StoreUnavailable

    job_id = rt.jobs.create("default", docs()[:3])
    run_ingest_job(rt.ingestor, rt.jobs, job_id)

    def down(tenant, **kwargs):
        raise StoreUnavailable("qdrant is restarting", retry_after=2)

    monkeypatch.setattr(rt.builder, "build", down)
    with pytest.raises(StoreUnavailable):
        rt.snapshots.build_pending("default", transient=(StoreUnavailable,))
    view = rt.jobs.get(job_id)
    assert view.status == "running" and view.phase == "awaiting_build"
    monkeypatch.undo()
    assert rt.snapshots.build_pending("default").hash == rt.jobs.get(job_id).snapshot
    assert rt.jobs.get(job_id).status == "succeeded"


# --- one document's payload never fails the build -----------------------------------------------------------------


BAD_VALUES = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "int>64bit": 2**70,
              "surrogate": "lone \ud800 surrogate"}


def test_a_document_whose_payload_the_store_cannot_hold_fails_alone(rt):
    """Stored before the API refused such values (or by any other writer of the catalog): the build leaves each such
    document out, names it in its job, and builds and promotes the rest; the next build does not fail either."""
    bad = [text_doc(f"bad-{name}", f"A note {i} about volcanoes and lava in Iceland.", x=value)
           for i, (name, value) in enumerate(BAD_VALUES.items())]
    job = ingest(rt, docs(d3=None) + bad)
    assert job.status == "succeeded" and job.snapshot, job
    assert job.counts["failed"] == len(BAD_VALUES)
    assert {f["doc_id"] for f in job.failures} == {f"bad-{name}" for name in BAD_VALUES}
    assert all("metadata.x" in f["reason"] for f in job.failures), job.failures
    live = rt.manifest.live("default")
    assert live.hash == job.snapshot and live.documents == len(DOCS) - 1
    assert rt.store.count(live.collection, filters={"doc_ids": [d.doc_id for d in bad]}) == 0
    assert rt.store.count(live.collection, filters={"doc_ids": "d1"}) > 0
    # A later job of the tenant builds too, still without them.
    later = ingest(rt, [text_doc("d3", DOCS["d3"])])
    assert later.status == "succeeded" and rt.manifest.live("default").hash == later.snapshot
    assert rt.manifest.live("default").documents == len(DOCS)


def test_a_payload_the_store_refuses_unforeseen_leaves_out_only_its_documents(rt, monkeypatch):
    """A refusal the payload check did not foresee: the points of the batch are tried alone, the refused point's
    documents are left out and named, and the build starts again without them."""
    upsert = rt.store.upsert

    def picky(name, points):
        if any("d5" in p.payload["doc_ids"] for p in points):
            raise ValueError("payload refused by the engine")
        return upsert(name, points)

    monkeypatch.setattr(rt.store, "upsert", picky)
    job = ingest(rt, docs())
    assert job.status == "succeeded", job
    assert [(f["doc_id"], "payload refused by the engine" in f["reason"]) for f in job.failures] == [("d5", True)]
    live = rt.manifest.live("default")
    assert live.documents == len(DOCS) - 1 and rt.store.count(live.collection, filters={"doc_ids": "d5"}) == 0


def test_a_refusal_of_every_point_fails_the_build_as_before(rt, monkeypatch):
    """Not one document's fault (every point refused alone): the build fails with the store's error."""
    def broken(name, points):
        raise ValueError("the engine refuses everything")

    monkeypatch.setattr(rt.store, "upsert", broken)
    with pytest.raises(ValueError, match="refuses everything"):
        ingest(rt, docs())


def test_a_chunk_takes_a_share_of_its_documents_bm25_weights_when_set(tmp_path):
    # "obsidian" is in the last chunk of `rocks` only; with SNAPDEX_BM25_DOCUMENT_WEIGHT every chunk of `rocks`
    # matches it (the chunk holding it first), and the setting is a config drift that rebuilds from the cache.
    filler = " ".join(f"Lava flow {j} cooled slowly on the slope of the mountain near the village." for j in range(12))
    corpus = docs(rocks=f"{filler} Obsidian is volcanic glass formed when lava cools fast.")

    def obsidian_hits(rt) -> list[tuple[str, int]]:
        snap = rt.manifest.live("default")
        hits = rt.pipeline.run(snap.collection, "obsidian", 20, rt.pipeline.stages(first_stage="bm25", rerank="none"),
                               dense=False).hits
        return [(h.payload["doc_ids"][0], h.payload["sources"][0]["position"]) for h in hits]

    before = make_runtime(tmp_path / "a")
    try:
        v1 = ingest(before, corpus).snapshot
        assert "document" not in before.manifest.live("default").config["bm25"]  # 0: hashes as before the setting
        chunks = len(before.catalog.get_document("default", "rocks").chunk_hashes)
        assert chunks >= 3 and obsidian_hits(before) == [("rocks", chunks - 1)]
    finally:
        before.close()
    after = make_runtime(tmp_path / "a", bm25_document_weight=0.4)
    try:
        assert after.config_drift() == {"default": ["bm25"]}
        result = after.snapshots.rebuild("default")
        assert result.built and result.hash != v1 and result.embedded == 0
        assert after.manifest.live("default").config["bm25"]["document"] == 0.4
        hits = obsidian_hits(after)
        assert hits[0] == ("rocks", chunks - 1) and sorted(hits) == [("rocks", i) for i in range(chunks)]
    finally:
        after.close()


def test_retention_never_deletes_a_running_rollouts_candidate(rt):
    tried, older = (ingest(rt, docs(d3=f"Edition {n} of document three. " * 5)).snapshot for n in range(2))
    for n in range(2, 4):
        ingest(rt, docs(d3=f"Edition {n} of document three. " * 5))
    rollout = rt.rollouts.start("default", rt.rollout_plan(tried, mode="canary"), "test")
    rt.snapshots.keep_extra = 0  # neither is live or was live last: only the rollout keeps `tried`
    assert rt.snapshots.retain("default") == [older]
    assert rt.manifest.get("default", tried).status == "retired"
    assert rt.store.has_collection(rt.manifest.get("default", tried).collection)
    rt.rollouts.stop("default", rollout["id"], "test")
    assert rt.snapshots.retain("default") == [tried]


def test_with_rollout_after_gate_a_snapshot_that_passes_starts_a_rollout_instead_of_going_live(tmp_path):
    rt = make_runtime(tmp_path, rollout_after_gate=True, rollout_mode="canary", rollout_steps=[0.2, 1.0],
                      rollout_min_feedback=50)
    try:
        hook, _ = rt.webhooks.create("default", "http://127.0.0.1:9/hook", ["rollout.stopped"])
        first = ingest(rt, docs()).snapshot
        assert rt.manifest.live("default").hash == first and rt.rollouts.list("default") == []  # nothing to compare
        second = ingest(rt, docs(d4="A rewritten fourth document. " * 5)).snapshot
        assert rt.manifest.live("default").hash == first and rt.manifest.get("default", second).status == "candidate"
        [running] = rt.rollouts.list("default")
        assert (running["candidate"], running["live"], running["state"], running["started_by"]) == \
            (second, first, "running", "gate")
        assert (running["mode"], running["steps"], running["min_feedback"]) == ("canary", [0.2, 1.0], 50)
        # A newer snapshot passes the gate: the older candidate's rollout stops in its favour.
        third = ingest(rt, docs(d4="A fourth document rewritten again. " * 5)).snapshot
        newest, older = rt.rollouts.list("default")
        assert (newest["candidate"], newest["state"]) == (third, "running")
        assert older["state"] == "stopped" and f"superseded by snapshot {third}" in older["reason"]
        assert [d.event_type for d in rt.webhooks.deliveries("default", hook.id)] == ["rollout.stopped"]
        assert rt.manifest.live("default").hash == first
    finally:
        rt.close()


def test_a_running_rollout_stops_when_the_live_snapshot_is_switched_by_hand(rt):
    first = ingest(rt, docs()).snapshot
    second = ingest(rt, docs(d5="The fifth document, rewritten. " * 5)).snapshot
    rollout = rt.rollouts.start("default", rt.rollout_plan(first), "test")
    rt.snapshots.promote("default", second, "api key k1")  # already live: nothing switched, the rollout goes on
    assert rt.rollouts.get("default", rollout["id"])["state"] == "running"
    rt.snapshots.rollback("default", "api key k1")
    stopped = rt.rollouts.get("default", rollout["id"])
    assert stopped["state"] == "stopped" and stopped["reason"] == (
        f"the live snapshot changed while it ran: {first} was made live again by a rollback (api key k1)")
    assert rt.rollouts.running("default") is None
