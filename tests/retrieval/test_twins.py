"""Near-duplicate twins through ingest, build and retrieval: which twin a grouped answer keeps is decided by when
each was sent. In one process, on the deterministic embedder."""

from __future__ import annotations

import pytest

from harness.helpers import ingest, make_runtime
from ingest.jobs import NewDocument

SENTENCES = [f"Sentence {i} talks about topic{i % 17} and the value {i * 3}." for i in range(60)]
PAGE = " ".join(SENTENCES)
QUERY = "Sentence 0 talks about topic0 and the value 0."  # the pages' first chunk: where their texts differ


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def documents(rt, query: str) -> list[str]:
    answer = rt.searcher.search("default", query, 10, use_cache=False, group_by="document")
    return [g.doc_id for g in answer.documents]


def test_twins_sent_together_are_all_answers_and_a_twin_sent_later_supersedes_them(rt):
    # One page under two names, sent in one request (manual pages: vi and vim): neither is a newer version.
    job = ingest(rt, [NewDocument("man1/vi", PAGE.encode()),
                      NewDocument("man1/vim", PAGE.replace("Sentence 0 ", "Sentence 0 of vim ").encode())])
    assert job.counts["near_duplicate"] == 1, job.counts
    live = rt.manifest.live("default").collection
    stamps = {s["doc_id"]: s["sent_at"] for r in rt.store.scroll(live, limit=1000)[0] for s in r.payload["sources"]}
    assert stamps["man1/vi"] == stamps["man1/vim"]
    assert {"man1/vi", "man1/vim"} <= set(documents(rt, QUERY)[:2])
    # A version of vi sent later: it is the one meant, and its twins (vi, and vim through vi) leave the answer.
    job = ingest(rt, [NewDocument("man1/vi-2", PAGE.replace("the value 177.", "the amount 177.").encode())])
    assert job.counts["near_duplicate"] == 1, job.counts
    found = documents(rt, QUERY)
    assert found[0] == "man1/vi-2" and not {"man1/vi", "man1/vim"} & set(found)
