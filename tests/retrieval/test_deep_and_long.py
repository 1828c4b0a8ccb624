"""Deep result lists and long queries cost what they must (issue 34), and answer as before: pruning finds a hit's
near-duplicate by a lookup of its sketch, not a scan of every kept hit; a long query's windows are embedded one by
one and kept, so a conversation resent with one more turn embeds only what the turn changed."""

from __future__ import annotations

import copy
import random
import re

import numpy as np
import pytest

from encoders.dense import HashEmbedder, input_windows
from retrieval import pruning
from retrieval.pruning import PruneConfig, _NearIndex, _Shingled, jaccard, prune, shingles
from retrieval.types import Candidate
from harness.helpers import make_runtime

WORDS = ("leave policy parental days paid employee request manager approve weeks notice salary holiday sick office "
         "remote contract travel expense claim receipt budget annual review training course").split()


def _cand(i: int, text: str, doc: str) -> Candidate:
    return Candidate(id=f"c{i}", payload={"text": text, "doc_ids": [doc], "sources": [{"doc_id": doc}]},
                     score=1.0 - i / 1000)


class _Scan(_NearIndex):
    """The lookup before the sketch index: every kept hit, in rank order."""

    def first(self, sh: _Shingled) -> Candidate | None:
        return next((c for c, ksh in self.hits if sh.similar(ksh, self.threshold)), None)


def _scan_prune(candidates: list[Candidate], top_k: int, config: PruneConfig) -> tuple[list[Candidate], int]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pruning, "_NearIndex", _Scan)
        return prune(candidates, top_k, config)


def _edited(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def _list(seed: int, n: int) -> list[Candidate]:
    """A deep list where a third of the hits are near or not-so-near copies of earlier ones (a word or a few
    changed, some copies of copies), and several documents hold more than one hit."""
    rng = random.Random(seed)
    out: list[Candidate] = []
    for i in range(n):
        if out and rng.random() < 0.35:
            text = _edited(out[rng.randrange(len(out))].text, rng, rng.choice((0, 1, 2, 4, 8)))
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 60)))
        out.append(_cand(i, text, f"d{rng.randrange(n // 2)}"))
    return out


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("max_per_document", [None, 1, 2])
def test_pruning_by_lookup_keeps_what_the_scan_kept(threshold, max_per_document):
    config = PruneConfig(near_duplicate=threshold, max_per_document=max_per_document)
    for seed in range(12):
        for top_k in (10, 100):
            cands = _list(seed, top_k + min(top_k, 10) + 40)
            want, want_dropped = _scan_prune(copy.deepcopy(cands), top_k, config)
            got, got_dropped = prune(cands, top_k, config)
            assert [c.id for c in got] == [c.id for c in want] and got_dropped == want_dropped
            assert [c.payload["sources"] for c in got] == [c.payload["sources"] for c in want]


def test_a_hit_like_two_kept_ones_goes_to_the_better_ranked():
    words = [f"w{i}" for i in range(60)]

    def text(**changed):
        return " ".join(changed.get(w, w) for w in words)

    a = text()
    b = text(w10="x", w30="y", w50="z")  # Jaccard with a 0.73: both kept at 0.8
    third = text(w10="x", w30="y")       # with a 0.81, with b 0.90: a near-duplicate of both
    cands = [_cand(0, a, "da"), _cand(1, " ".join(reversed(words)), "dr"), _cand(2, b, "db"),
             _cand(3, third, "dt")]
    kept, dropped = prune(copy.deepcopy(cands), 10, PruneConfig(near_duplicate=0.8))
    assert [c.id for c in kept] == ["c0", "c1", "c2"] and dropped == 1
    # The first kept one in rank order takes it, as the scan did, not the most similar.
    assert [s["doc_id"] for s in kept[0].payload["sources"]] == ["da", "dt"]
    assert [s["doc_id"] for s in kept[2].payload["sources"]] == ["db"]


def _shingled(hashes: set[int], sketch: set[int]) -> _Shingled:
    sh = _Shingled("")
    sh.set, sh.sketch = np.array(sorted(hashes), dtype=np.int64), frozenset(sketch)
    return sh


def test_at_a_low_threshold_hits_sharing_no_sketch_hash_are_still_compared():
    """At or below a Jaccard of 0.35 the sketches' first look passes any pair of similar sizes: a lookup by shared
    hashes would miss those that share none."""
    kept = _cand(0, "kept", "a")
    index = _NearIndex(0.3)
    index.add(kept, _shingled({1, 2, 3}, {101}))
    assert index.first(_shingled({1, 2, 4}, {202})) is kept  # Jaccard 0.5, no sketch hash shared
    index = _NearIndex(0.8)
    index.add(kept, _shingled({1, 2, 3}, {101}))
    assert index.first(_shingled({1, 2, 3}, {202})) is None  # the first look, as the scan's


def test_shingle_hashes_give_the_jaccard_of_the_word_runs():
    rng = random.Random(5)
    for _ in range(200):
        a = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 80)))
        b = _edited(a, rng, rng.randrange(0, 6)) if rng.random() < 0.7 else " ".join(rng.sample(WORDS, 5))

        def runs(text):
            w = re.findall(r"\w+", text.lower())
            return {tuple(w)} if len(w) < 3 else set(zip(w, w[1:], w[2:]))

        want = len(runs(a) & runs(b)) / len(runs(a) | runs(b))
        assert jaccard(shingles(a), shingles(b)) == pytest.approx(want, abs=1e-12)
        assert shingles(a).size == len(runs(a))


class CountingEmbedder(HashEmbedder):
    """Records every text it embeds, call by call."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.batches: list[list[str]] = []

    def embed(self, texts):
        self.batches.append(list(texts))
        return super().embed(texts)


SENTENCES = [f"Sentence number {i} asks about topic {i % 7} and the leave policy." for i in range(30)]


def test_a_long_query_embeds_each_window_alone_to_the_same_vector(tmp_path):
    rt = make_runtime(tmp_path, query_embed_tokens=0)  # every word piece: these windows are what is tested
    try:
        rt.pipeline.embedder = e = CountingEmbedder(dim=32, max_tokens=40)
        query = " ".join(SENTENCES[:12])
        windows = input_windows(e, query)
        got = rt.pipeline.embed_query((query,))
        assert len(windows) > 2 and got.windows == len(windows)
        # One call per window, none padded to another: the batch of them all was the cost.
        assert e.batches == [[w] for w in windows]
        # The vector the batched windows gave: their unit vectors weighted by their word pieces, made unit again.
        vecs = HashEmbedder(dim=32, max_tokens=40).embed(windows)
        weights = np.asarray(e.count_tokens(windows), dtype=np.float32)
        want = (vecs * weights[:, None]).sum(0)
        assert np.allclose(got.vector, want / np.linalg.norm(want), atol=1e-6)
        assert np.allclose(got.rows, vecs, atol=1e-6)
    finally:
        rt.close()


def test_a_conversation_resent_with_one_more_turn_embeds_only_the_new_windows(tmp_path):
    rt = make_runtime(tmp_path, query_embed_tokens=0)
    try:
        rt.pipeline.embedder = e = CountingEmbedder(dim=32, max_tokens=40)
        first = " ".join(SENTENCES[:10])
        rt.pipeline.embed_query((first,))
        e.batches.clear()
        longer = first + " " + " ".join(SENTENCES[10:13])
        got = rt.pipeline.embed_query((longer,))
        before, after = input_windows(e, first), input_windows(e, longer)
        assert after[:len(before) - 1] == before[:-1]  # windows are cut from the start
        assert e.batches == [[w] for w in after[len(before) - 1:]]
        fresh = make_runtime(tmp_path / "fresh", query_embed_tokens=0)
        try:
            fresh.pipeline.embedder = CountingEmbedder(dim=32, max_tokens=40)
            assert np.allclose(got.vector, fresh.pipeline.embed_query((longer,)).vector, atol=1e-6)
        finally:
            fresh.close()
        # Short texts still go to the model in one batch.
        e.batches.clear()
        rt.pipeline.embed_query(("short one", "short two"))
        assert e.batches == [["short one", "short two"]]
    finally:
        rt.close()


def test_shingles_kept_by_chunk_prune_the_same(tmp_path):
    from retrieval.cache import BoundedCache

    memo = BoundedCache(1 << 20)
    cands = _list(3, 120)
    for c in cands:
        c.payload["chunk_hash"] = f"h-{c.text}"
    want = prune(copy.deepcopy(cands), 100, PruneConfig())
    first = prune(copy.deepcopy(cands), 100, PruneConfig(), memo)
    misses = memo.misses
    again = prune(copy.deepcopy(cands), 100, PruneConfig(), memo)
    for got in (first, again):
        assert [c.id for c in got[0]] == [c.id for c in want[0]] and got[1] == want[1]
    assert memo.misses == misses and memo.hits >= len(want[0])  # the second answer made no shingles


def test_window_vectors_kept_by_point_highlight_the_same_without_reading_the_store(tmp_path):
    from retrieval.context import add_highlights

    rt = make_runtime(tmp_path)
    try:
        from harness.helpers import ingest, text_doc

        ingest(rt, [text_doc(f"d{i}", " ".join(f"Sentence {j} of part {i} is about topic{(i + j) % 5}."
                                                 for j in range(12))) for i in range(6)], tenant="hl")
        live = rt.manifest.live("hl")
        answer = rt.searcher.search("hl", "sentence about topic3", 20, highlights=True, use_cache=False)
        assert any(h.highlights for h in answer.hits)
        reads = []
        retrieve = rt.store.retrieve
        rt.store.retrieve = lambda *a, **kw: reads.append(a[1]) or retrieve(*a, **kw)
        vector = rt.pipeline.embed_query(("sentence about topic3",)).vector
        hits = [copy.deepcopy(h) for h in answer.hits]
        for h in hits:
            h.highlights = []
        add_highlights(rt.store, live.collection, hits, vector, rt.pipeline.chunks)
        # The answer's own call kept every hit's windows: none read again, the same highlights.
        assert reads == [] and [h.highlights for h in hits] == [h.highlights for h in answer.hits]
        add_highlights(rt.store, live.collection, hits, vector)  # no memo: read, the same again
        assert len(reads) == 1 and [h.highlights for h in hits] == [h.highlights for h in answer.hits]
    finally:
        rt.close()
