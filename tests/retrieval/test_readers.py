"""What decides a principal's answer after the first stage: pruning (the cap per document, near-duplicate twins) reads
the candidates as the principal sees them, so a document it may not read, sharing chunks with one it may, removes
none of its hits and spends none of its caps. In one process, on the deterministic embedder."""

from __future__ import annotations

import pytest

from ingest.access import Reader
from ingest.jobs import NewDocument
from harness.helpers import ingest, make_runtime

SENTENCES = [f"Sentence {i} talks about topic{i % 17} and the value {i * 3}." for i in range(60)]
CAROL_ONLY = {"users": ["carol"], "groups": []}
ALICE, CAROL = Reader.of("alice", [], True), Reader.of("carol", [], True)


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def hits(rt, query: str, reader: Reader, **options) -> list[tuple[str, ...]]:
    answer = rt.searcher.search("default", query, 20, reader=reader, use_cache=False, **options)
    return [tuple(h.payload["doc_ids"]) for h in answer.hits]


def test_a_hidden_document_sharing_chunks_spends_none_of_a_readers_cap(rt):
    # "a-secret" holds the first half of "b-open" word for word: their first chunks are one point each, listing the
    # hidden document first (by id).
    job = ingest(rt, [NewDocument("b-open", " ".join(SENTENCES).encode(), {"team": "hr"}),
                      NewDocument("a-secret", " ".join(SENTENCES[:30]).encode(), {"team": "board"},
                                  access=CAROL_ONLY)])
    assert job.status == "succeeded", job.error
    shared = rt.store.count(rt.manifest.live("default").collection, {"doc_ids": ["a-secret"]})
    assert shared > 1
    for cap in (1, 2):
        assert hits(rt, "sentence talks about topic", ALICE, max_per_document=cap) == [("b-open",)] * cap
    # The one who reads both: one hit per document and cap.
    assert sorted(d[0] for d in hits(rt, "sentence talks about topic", CAROL, max_per_document=1)) == \
        ["a-secret", "b-open"]


def test_a_hidden_newer_twin_collapses_none_of_a_readers_hits(rt):
    """v2 (newer, near-duplicate of v1, shares most of its chunks) is carol's alone: to carol, collapse keeps v2's
    hits and drops v1's; to alice, v1 is a document without a twin, and every hit of it stays."""
    v1 = " ".join(SENTENCES)
    v2 = v1.replace("the value 177.", "the amount one hundred and seventy seven.")
    assert ingest(rt, [NewDocument("policy-v1", v1.encode())]).status == "succeeded"
    job = ingest(rt, [NewDocument("policy-v2", v2.encode(), access=CAROL_ONLY)])
    assert job.counts["near_duplicate"] == 1, job.counts
    query = "Sentence 59 talks about topic8 and the value 177."  # v1's last chunk, which v2 does not share
    mine = hits(rt, query, ALICE)
    assert mine and all(d == ("policy-v1",) for d in mine)
    carols = hits(rt, query, CAROL)
    assert carols and all(d[0] == "policy-v2" for d in carols)
    # Alice's answer is the one she gets with no v2 at all: every chunk of v1 that matched.
    live = rt.manifest.live("default").collection
    v1_chunks = {r.payload["chunk_hash"] for r in rt.store.scroll(live, {"doc_ids": "policy-v1"}, limit=1000)[0]}
    answer = rt.searcher.search("default", query, 20, reader=ALICE, use_cache=False)
    assert {h.payload["chunk_hash"] for h in answer.hits} == v1_chunks
    assert all(h.payload["sources"][0]["twins"] == [] for h in answer.hits)  # carol's v2 is not named to her
