"""Ingest end to end in one process: parse, chunk, dedup, embed, build the snapshot collection."""

from __future__ import annotations

import pytest

from index_snapshots.builder import collection_name
from ingest.jobs import NewDocument
from harness.helpers import embedded_texts, ingest, make_runtime, text_doc

LONG = " ".join(f"Sentence {i} talks about topic{i % 17} and the value {i * 3}." for i in range(60))
OTHER = " ".join(f"Paragraph {i}: rivers{i % 5} flow into lake{i % 11} near town {i}." for i in range(60))
THIRD = "Completely unrelated text about astronomy, comets and telescopes. " * 5


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def live_collection(rt, tenant="default"):
    live = rt.manifest.live(tenant)
    assert live is not None
    assert live.collection == collection_name(tenant, live.hash)
    return live


def test_ingest_counts_dedup_and_sources(rt):
    near = LONG.replace("value 30.", "value thirty.")
    job = ingest(rt, [
        text_doc("a", LONG, lang="en"),
        text_doc("b", OTHER, lang="en"),
        text_doc("a-copy", "  " + LONG.replace(". ", ".\n\n"), lang="de"),  # same normalised content
        text_doc("a-near", near),
    ])
    assert job.status == "succeeded", job.error
    assert job.counts == {"new": 2, "updated": 0, "unchanged": 0, "duplicate": 1, "near_duplicate": 1, "failed": 0}
    assert job.docs_done == job.docs_total == 4
    assert job.chunks_done == job.chunks_total > 0
    live = live_collection(rt)
    assert job.snapshot == live.hash
    # Every chunk of "a" is one point that lists both sources and both languages.
    a = rt.catalog.get_document("default", "a")
    records, _ = rt.store.scroll(live.collection, filters={"doc_ids": "a-copy"}, limit=1000)
    assert len(records) == len(a.chunk_hashes)
    # (the near-duplicate "a-near", indexed too, shares most of them)
    assert all({"a", "a-copy"} <= set(r.payload["doc_ids"]) <= {"a", "a-copy", "a-near"} for r in records)
    assert all(sorted(r.payload["metadata"]["lang"]) == ["de", "en"] for r in records)
    # A near-duplicate is indexed (issue 19: no document sent is left unsearchable), its twin recorded.
    assert rt.store.count(live.collection, filters={"doc_ids": "a-near"}) > 0
    assert rt.catalog.get_document("default", "a-near").duplicate_of == "a"


def test_reingest_same_documents_embeds_nothing_and_keeps_snapshot(rt):
    docs = [text_doc("a", LONG), text_doc("b", OTHER)]
    first = ingest(rt, docs)
    calls = rt.embedder.texts_embedded
    second = ingest(rt, docs)
    assert second.counts["unchanged"] == 2 and second.counts["new"] == 0
    assert rt.embedder.texts_embedded == calls
    assert second.snapshot == first.snapshot
    assert len(rt.manifest.list("default")) == 1


def test_changed_document_replaces_its_chunks_and_embeds_only_them(rt):
    first = ingest(rt, [text_doc("a", LONG), text_doc("b", OTHER)])
    before = rt.embedder.texts_embedded
    old = embedded_texts(rt, "default", "b")
    second = ingest(rt, [text_doc("a", LONG), text_doc("b", THIRD)])
    assert second.counts["updated"] == 1 and second.counts["unchanged"] == 1
    new = embedded_texts(rt, "default", "b")
    assert rt.embedder.texts_embedded - before == len(new - old - embedded_texts(rt, "default", "a"))
    assert second.snapshot != first.snapshot
    live = live_collection(rt)
    texts = " ".join(r.payload["text"] for r in rt.store.scroll(live.collection, limit=1000)[0])
    assert "astronomy" in texts and "rivers" not in texts
    b_chunks = rt.catalog.get_document("default", "b").chunk_hashes
    assert rt.store.count(live.collection) == len(b_chunks) + len(rt.catalog.get_document("default", "a").chunk_hashes)


def test_bad_file_fails_alone(rt):
    job = ingest(rt, [
        NewDocument("broken.pdf", b"%PDF-1.4 this is not really a pdf", {}, filename="broken.pdf"),
        NewDocument("notes.txt", LONG.encode(), {}, filename="notes.txt"),
    ])
    assert job.status == "succeeded"
    assert job.counts["failed"] == 1 and job.counts["new"] == 1, job.failures
    assert job.failures[0]["doc_id"] == "broken.pdf" and job.failures[0]["reason"]


def test_attachments_named_with_what_an_id_may_not_hold_get_valid_ids(rt):
    """A sender names attachments (RFC 2231 lets a name hold any byte): control characters, a blank name and a repeat
    become ids every route can address (ingest/ids.py), each attachment ingested as its own document."""
    from wire.ids import id_problem

    def part(name: str) -> str:
        return ("--b\nContent-Type: text/plain\n"
                f"Content-Disposition: attachment; filename*=utf-8''{name}\n\n"
                "Quarterly figures: revenue rose in every region.\n")

    mail = ("From: a@example.com\nTo: b@example.com\nSubject: Reports\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
            "The quarterly reports are attached.\n" + part("re%0D%0Aport%00.txt") + part("re%0D%0Aport%00.txt")
            + part("%20%09") + "--b--\n")
    job = ingest(rt, [NewDocument("mail.eml", mail.encode(), {}, filename="mail.eml")])
    assert job.status == "succeeded" and job.failures == [], job
    ids = sorted(d.doc_id for d in rt.catalog.documents("default"))
    assert ids == ["mail.eml", "mail.eml/2-re  port .txt", "mail.eml/attachment-3", "mail.eml/re  port .txt"], ids
    assert all(id_problem(i) is None for i in ids)


def test_rerunning_a_job_after_a_crash_finishes_without_duplicates(rt):
    docs = [text_doc("a", LONG), text_doc("b", OTHER), text_doc("c", THIRD)]
    job_id = rt.jobs.create("default", docs)
    # Simulate a worker that died after the first document: its outcome was committed, the rest not.
    rt.jobs.start(job_id)
    near = rt.ingestor._near_index("default")
    first = next(rt.jobs.pending(job_id))
    rt.ingestor._process(job_id, "default", first, near)
    from index_snapshots.service import run_ingest_job

    assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"
    rt.snapshots.build_pending("default")
    view = rt.jobs.get(job_id)
    assert view.status == "succeeded" and view.attempts == 2
    assert view.counts["new"] == 3 and view.docs_done == 3
    live = live_collection(rt)
    hashes = {h for d in ("a", "b", "c") for h in rt.catalog.get_document("default", d).chunk_hashes}
    assert rt.store.count(live.collection) == len(hashes)


def test_tenants_are_separate_collections(rt):
    ingest(rt, [text_doc("a", LONG)], tenant="acme")
    ingest(rt, [text_doc("a", OTHER)], tenant="globex")
    acme, globex = rt.manifest.live("acme"), rt.manifest.live("globex")
    assert acme.collection != globex.collection
    assert all(r.payload["tenant"] == "acme" for r in rt.store.scroll(acme.collection, limit=100)[0])


class _Watching:
    """Wraps the fake embedder: at each model call, how many documents of the job had been recorded, and how
    many texts the call was given."""

    def __init__(self, rt, job_id, fail_on_call: int | None = None, pause_s: float = 0.3):
        self.rt, self.job_id, self.fail_on_call, self.pause_s = rt, job_id, fail_on_call, pause_s
        self.inner = rt.embedder
        self.seen: list[int] = []
        self.sizes: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_spans(self, texts, spans):
        self.seen.append(self.rt.jobs.get(self.job_id).docs_done)
        self.sizes.append(len(texts))
        if self.fail_on_call is not None and len(self.seen) == self.fail_on_call:
            raise ConnectionError("embedding cache went away")
        import time

        time.sleep(self.pause_s)  # a model call takes time: the parser goes on meanwhile
        return self.inner.embed_spans(texts, spans)


def _many_docs(n: int) -> list[NewDocument]:
    return [text_doc(f"d{i}", " ".join(f"Document {i} sentence {j} mentions term{i}x{j} and more."
                                        for j in range(12))) for i in range(n)]


def test_ingest_parses_the_next_documents_while_a_batch_is_embedded(tmp_path):
    from dataclasses import replace

    from index_snapshots.service import run_ingest_job

    rt = make_runtime(tmp_path)
    try:
        rt.ingestor.config = replace(rt.ingestor.config, embed_batch_size=8)
        job_id = rt.jobs.create("default", _many_docs(40))
        watch = _Watching(rt, job_id)
        rt.embedding.backend = watch
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id)
        view = rt.jobs.get(job_id)
        assert view.status == "running" and view.docs_done == 40 and view.chunks_done == view.chunks_total > 8
        # The first batch went to the model long before the last document was parsed, and documents kept being
        # parsed while batches were embedded (between the model's calls: each saw more of them recorded).
        assert watch.seen[0] < 40 and len(watch.seen) >= 3
        assert any(b > a for a, b in zip(watch.seen, watch.seen[1:-1]))
        assert view.chunks_embedded == view.chunks_total and view.chunks_reused == 0
    finally:
        rt.close()


def test_parsing_never_runs_while_the_model_does(tmp_path):
    # Beside the model, parsing stalled its threads (see ingest.pipeline._Turns): a document is parsed only
    # between calls of the model, and a call waits for the document being parsed.
    import threading
    import time
    from dataclasses import replace

    from index_snapshots.service import run_ingest_job

    rt = make_runtime(tmp_path)
    try:
        rt.ingestor.config = replace(rt.ingestor.config, embed_batch_size=8, first_embed_batch=8)
        job_id = rt.jobs.create("default", _many_docs(40))
        parsed: list[tuple[float, float]] = []
        modelled: list[tuple[float, float]] = []
        lock = threading.Lock()

        def timed(fn, into):
            def run(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    with lock:
                        into.append((started, time.perf_counter()))
            return run

        rt.ingestor._process = timed(rt.ingestor._process, parsed)
        watch = _Watching(rt, job_id, pause_s=0.05)
        watch.embed_spans = timed(watch.embed_spans, modelled)
        rt.embedding.backend = watch
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id)
        assert len(parsed) == 40 and len(modelled) >= 5
        overlaps = [(p, m) for p in parsed for m in modelled if p[0] < m[1] and m[0] < p[1]]
        assert overlaps == []
        # Still overlapped at the batch level: documents were parsed after the first call of the model began.
        assert sum(p[0] > modelled[0][0] for p in parsed) > 10
    finally:
        rt.close()


def test_a_waiting_model_call_goes_before_the_next_document():
    import threading
    import time

    from ingest.pipeline import _Turns

    turns, order = _Turns(), []
    inside, release = threading.Event(), threading.Event()

    def parse(name, hold=False):
        with turns.parsing():
            order.append(name)
            if hold:
                inside.set()
                release.wait(10)

    def model():
        with turns.model():
            order.append("model")

    threads = [threading.Thread(target=parse, args=("doc1", True))]
    threads[0].start()
    assert inside.wait(10)
    threads.append(threading.Thread(target=model))
    threads[1].start()
    while not turns._model_wants:  # the model's call is waiting for doc1
        time.sleep(0.001)
    threads.append(threading.Thread(target=parse, args=("doc2",)))
    threads[2].start()
    time.sleep(0.05)
    assert order == ["doc1"]  # neither the model (doc1 is being parsed) nor doc2 (the model waits) got in
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["doc1", "model", "doc2"]


def test_a_job_hands_its_first_chunks_to_the_model_early_then_full_batches(tmp_path):
    from dataclasses import replace

    from index_snapshots.service import run_ingest_job

    rt = make_runtime(tmp_path)
    try:
        rt.ingestor.config = replace(rt.ingestor.config, embed_batch_size=32, first_embed_batch=4)
        job_id = rt.jobs.create("default", _many_docs(40))
        watch = _Watching(rt, job_id, pause_s=0.0)
        rt.embedding.backend = watch
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id)
        view = rt.jobs.get(job_id)
        # The model is fed after 4 chunks, not after a whole batch is parsed; batches then double up to the full
        # size, and each model call gets a whole batch (the last one: what is left).
        sizes = watch.sizes
        assert sizes[:4] == [4, 8, 16, 32] and all(n == 32 for n in sizes[3:-1]) and 0 < sizes[-1] <= 32
        assert sum(sizes) == view.chunks_total > 100
        assert view.chunks_embedded == view.chunks_total
    finally:
        rt.close()


def test_an_embedding_failure_stops_the_job_and_a_rerun_embeds_each_chunk_once(tmp_path):
    from dataclasses import replace

    from index_snapshots.service import run_ingest_job

    rt = make_runtime(tmp_path)
    try:
        rt.ingestor.config = replace(rt.ingestor.config, embed_batch_size=8)
        job_id = rt.jobs.create("default", _many_docs(30))
        rt.embedding.backend = _Watching(rt, job_id, fail_on_call=2)
        with pytest.raises(ConnectionError):
            rt.ingestor.run(job_id)
        assert rt.jobs.get(job_id).docs_done < 30  # the parser stopped with the embedder
        before = rt.embedder.texts_embedded
        rt.embedding.backend = rt.embedder
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id)
        view = rt.jobs.get(job_id)
        assert view.docs_done == 30 and view.chunks_done == view.chunks_total
        # What the first attempt embedded came from the cache: every chunk went through the model once in all.
        hashes = {h for i in range(30) for h in rt.catalog.get_document("default", f"d{i}").chunk_hashes}
        assert rt.embedder.texts_embedded == len(hashes) and before < len(hashes)
    finally:
        rt.close()


class TimeUp(Exception):
    """Stands for Celery's SoftTimeLimitExceeded, an Exception raised in the task's thread wherever it is."""


def test_a_soft_time_limit_during_a_document_requeues_the_job_instead_of_failing_the_document(rt, monkeypatch):
    from index_snapshots.service import Requeue, run_ingest_job
    from ingest import pipeline

    job_id = rt.jobs.create("default", [text_doc("a", LONG)])

    def time_up(*_args, **_kwargs):  # the limit lands after the parse, while the document's language is found
        raise TimeUp()

    with monkeypatch.context() as m:
        m.setattr(pipeline, "document_language", time_up)
        with pytest.raises(Requeue):
            run_ingest_job(rt.ingestor, rt.jobs, job_id, interrupts=(TimeUp,))
    view = rt.jobs.get(job_id)
    assert view.status == "queued" and view.failures == [] and view.counts["failed"] == 0, view
    # Its next turn ingests the document.
    assert run_ingest_job(rt.ingestor, rt.jobs, job_id, interrupts=(TimeUp,)) == "default"
    assert rt.jobs.get(job_id).counts["new"] == 1
