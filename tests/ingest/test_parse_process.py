"""Parsing in child processes (ingest/parse_process.py, issue 31): what a child parses equals what the parser gives in
process; a document past the clock or the memory limit, or whose child crashes, fails alone with the reason and the
next document gets a new child; children load no embedder stack and leave when idle. In the pipeline, a job whose
document passed a limit gives its worker up, queued again with its progress, and a document whose parse was
started MAX_PARSE_STARTS times without finishing fails with that reason."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from index_snapshots.service import Requeue, run_ingest_job
from ingest import formats
from ingest.jobs import NewDocument
from ingest.parse_process import ParseLimitExceeded, ParseLimits, ParserPool
from ingest.pipeline import MAX_PARSE_STARTS
from tests import office_files as files
from harness.helpers import make_runtime
from harness.procs import wait_until
from harness.runaway_inputs import SLOW_TEXT, looping_pdf


@pytest.fixture
def pool():
    p = ParserPool(ParseLimits(timeout_s=3, memory_mb=4096))
    yield p
    p.close()


def _child(p: ParserPool) -> int:
    assert len(p._idle) == 1
    return p._idle[0].pid


def test_what_a_child_parses_equals_what_the_parser_gives_in_process(pool, documents_dir):
    uploads = {path.name: path.read_bytes() for path in sorted(documents_dir.iterdir())}
    uploads.update({"deck.pptx": files.pptx(), "budget.xlsx": files.xlsx(), "cities.csv": files.csv_text(),
                    "offsite.eml": files.eml(), "audit.msg": files.msg(), "sailing.epub": files.epub(),
                    "greenhouse.odt": files.odt(), "observatory.rtf": files.rtf()})
    for name, data in uploads.items():
        assert pool.parse_bytes(data, name) == formats.parse_bytes(data, name), name
    assert pool.parse_bytes(files.eml(), "m.eml").attachments  # mail attachments cross back, bytes and all
    for text in ("plain words\n\nand a second paragraph", "# Title\n\nMarkdown body", files.csv_text().decode(),
                 "<html><body><h1>Hi</h1><p>there</p></body></html>", "Zürich und Köln"):
        assert pool.parse_text(text.encode()) == formats.parse_text(text), text
    with pytest.raises(formats.ParseError, match="^not a valid PDF"):
        pool.parse_bytes(b"%PDF-1.4 this is not really a pdf", "broken.pdf")


def test_a_child_loads_the_parser_but_no_embedder_stack(pool):
    resident = pool.warm_up()
    maps = Path(f"/proc/{_child(pool)}/maps").read_text()
    assert "spacy" in maps or "thinc" in maps or "numpy" in maps  # the parser's own libraries are there
    for stack in ("torch", "onnxruntime"):
        assert stack not in maps
    assert 100 * 2**20 < resident < 1024 * 2**20


def test_past_the_clock_a_document_fails_alone_and_the_next_gets_a_new_child(pool):
    pool.parse_text(b"warm")
    first = _child(pool)
    with pytest.raises(ParseLimitExceeded, match=r"^parse exceeded 3 s \(SNAPDEX_PARSE_TIMEOUT_S\)$"):
        pool.parse_text(SLOW_TEXT)
    assert not pool._idle and not Path(f"/proc/{first}").exists()  # killed, and reaped
    assert pool.parse_text(b"next words").text == "next words"
    assert _child(pool) != first


def test_past_the_memory_limit_a_document_fails_alone():
    p = ParserPool(ParseLimits(timeout_s=120, memory_mb=400))
    try:
        with pytest.raises(ParseLimitExceeded, match=r"^parse exceeded 400 MiB \(SNAPDEX_PARSE_MEMORY_MB\)$"):
            p.parse_bytes(looping_pdf(), "loop.pdf")
        assert p.parse_bytes(b"# Still\n\nparsing", "after.md").text == "# Still\n\nparsing"
    finally:
        p.close()


def test_a_child_that_crashes_fails_only_its_document(pool):
    pool.parse_text(b"warm")
    child = _child(pool)
    threading.Timer(1.0, os.kill, (child, signal.SIGSEGV)).start()  # the way a C parser dies
    with pytest.raises(formats.ParseError, match=r"^the parser crashed \(SIGSEGV\)$"):
        pool.parse_text(SLOW_TEXT)
    assert pool.parse_text(b"still here").text == "still here"


def test_a_child_is_not_blamed_for_the_memory_of_the_process_that_started_it():
    """ru_maxrss survives fork and exec: a child of a service already past the limit starts with that "peak". It is
    neither recycled after every document nor failed for the memory limit when it dies of something else."""
    ballast = bytearray(192 * 1024 * 1024)  # this process's peak past the limit, whatever ran before
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))
    p = ParserPool(ParseLimits(timeout_s=30, memory_mb=128))
    try:
        assert p.parse_text(b"one").text == "one"
        child = p._idle[0]
        assert child.inherited_peak > p.limits.memory_bytes
        assert p.parse_text(b"two").text == "two"
        assert p._idle == [child] and child.alive()  # kept for the next document, not recycled
        threading.Timer(1.0, os.kill, (child.pid, signal.SIGSEGV)).start()
        with pytest.raises(formats.ParseError, match=r"^the parser crashed \(SIGSEGV\)$"):
            p.parse_text(SLOW_TEXT)
    finally:
        p.close()
        del ballast


def test_an_idle_child_leaves_and_another_takes_its_place():
    p = ParserPool(ParseLimits(idle_exit_s=0.3))
    try:
        p.parse_text(b"one")
        child = p._idle[0]
        wait_until(lambda: not child.alive(), 10, "the idle child to exit")
        assert child.proc.returncode == 0
        assert p.parse_text(b"two").text == "two"
    finally:
        p.close()


def test_a_job_whose_document_passed_a_limit_is_queued_again_with_its_progress(tmp_path):
    rt = make_runtime(tmp_path, parse_timeout_s=3)
    try:
        docs = [NewDocument("slow", SLOW_TEXT), NewDocument("good", b"Harbour seals rest on the sandbank at low tide.")]
        job_id = rt.jobs.create("default", docs)
        with pytest.raises(Requeue):
            run_ingest_job(rt.ingestor, rt.jobs, job_id)
        requeued = time.time()
        view = rt.jobs.get(job_id)
        assert (view.status, view.phase, view.docs_done) == ("queued", "parsing", 1)
        # The oldest-queued gauge (and its alert) counts its wait from now, not from its creation 3 s ago.
        assert view.created_at < requeued - 2 < rt.jobs.stats()["default"]["oldest"]["queued"] <= requeued
        assert view.failures == [{"doc_id": "slow", "filename": None,
                                  "reason": "parse exceeded 3 s (SNAPDEX_PARSE_TIMEOUT_S)"}]
        assert rt.recover() == [job_id]  # a restart now enqueues it again
        assert not rt.jobs.ingesting("other") and rt.jobs.ingesting("default")  # its tenant's build waits for it
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"
        view = rt.jobs.get(job_id)
        assert (view.status, view.phase, view.attempts) == ("running", "awaiting_build", 2)
        assert view.counts["new"] == 1 and view.counts["failed"] == 1
    finally:
        rt.close()


def test_a_parse_started_too_often_without_an_end_fails_with_that_reason(tmp_path):
    rt = make_runtime(tmp_path)
    try:
        job_id = rt.jobs.create("default", [NewDocument("crashy", b"Words the service died on, twice."),
                                            NewDocument("fine", b"Words that parse.")])
        for _ in range(MAX_PARSE_STARTS):
            rt.jobs.parse_started(job_id, 0)
        assert run_ingest_job(rt.ingestor, rt.jobs, job_id) == "default"
        view = rt.jobs.get(job_id)
        assert view.failures == [{"doc_id": "crashy", "filename": None, "reason":
                                  "parsing was cut short 2 times (the service stopped while parsing it)"}]
        assert view.counts["new"] == 1
    finally:
        rt.close()


@pytest.mark.parametrize("env, says", [
    ({"parse_timeout_s": 0}, "greater than 0"),
    ({"parse_timeout_s": float("inf")}, "finite number"),
    ({"parse_timeout_s": "nan"}, "finite number"),
    ({"parse_memory_mb": 0}, "greater than or equal to 64"),
    ({"task_soft_time_limit_s": 3000, "task_time_limit_s": 2000}, "task_soft_time_limit_s .* < task_time_limit_s"),
    ({"task_time_limit_s": 4000}, "< visibility_timeout_s"),
])
def test_the_limits_are_checked(env, says):
    from pydantic import ValidationError

    from snapdex.settings import Settings

    with pytest.raises(ValidationError, match=says):
        Settings(**env)
    assert Settings().task_time_limits == (1800, 2700)
