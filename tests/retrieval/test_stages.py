"""Fusion, pruning, the late-interaction stage and the pipeline, on hand-made cases and a small real index."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.windows import Window, WindowConfig, chunk_windows, sentence_windows, sentences
from retrieval.cache import ResultCache, request_key
from retrieval.fusion import weighted_zscore, zscores
from retrieval.late_interaction import LateInteractionWeights
from retrieval.pruning import PruneConfig, prune
from retrieval.types import Candidate
from harness.helpers import ingest, make_runtime, text_doc


def test_zscores_by_hand():
    np.testing.assert_allclose(zscores([1.0, 2.0, 3.0]), [-1.224744871, 0.0, 1.224744871])
    np.testing.assert_allclose(zscores([5.0, 5.0]), [0.0, 0.0])  # no spread: no opinion
    # bm25 [0, 3] -> z [-1, 1]; windows [0.2, 0.1] -> z [1, -1]; weights 1 and 2: totals [1, -1]
    np.testing.assert_allclose(weighted_zscore({"bm25": [0, 3], "windows": [0.2, 0.1]}, {"bm25": 1, "windows": 2}),
                               [1.0, -1.0])
    with pytest.raises(ValueError, match="not among"):
        weighted_zscore({"bm25": [1]}, {"dense": 1})
    with pytest.raises(ValueError, match="same candidates"):
        weighted_zscore({"bm25": [1], "dense": [1, 2]}, {"dense": 1})


def test_late_interaction_weights_are_checked():
    with pytest.raises(ValueError, match=r"bm25=-1 is out of range \[0, 10\]"):
        LateInteractionWeights(0, -1, 1)
    with pytest.raises(ValueError, match="all 0"):
        LateInteractionWeights(0, 0, 0)


def _cand(i: str, text: str, doc: str) -> Candidate:
    return Candidate(id=i, payload={"text": text, "doc_ids": [doc], "sources": [{"doc_id": doc}]})


def test_prune_collapses_near_duplicates_and_caps_per_document():
    body = "the vpn client must be updated before connecting from abroad and the helpdesk can help you " * 2
    hits = [_cand("1", body, "a"), _cand("2", body + " today", "b"), _cand("3", "refunds take a week", "a"),
            _cand("4", "invoices go out monthly", "a"), _cand("5", "expenses need receipts", "c")]
    kept, dropped = prune(hits, 10, PruneConfig(near_duplicate=0.8))
    assert [c.id for c in kept] == ["1", "3", "4", "5"] and dropped == 1
    assert [s["doc_id"] for s in kept[0].payload["sources"]] == ["a", "b"]  # the twin's source is kept
    kept, dropped = prune([_cand(c.id, c.text, c.payload["doc_ids"][0]) for c in hits], 10,
                          PruneConfig(near_duplicate=0.8, max_per_document=1))
    assert [c.id for c in kept] == ["1", "5"] and dropped == 3
    kept, _ = prune(hits, 2, PruneConfig(near_duplicate=1.0))
    assert [c.id for c in kept] == ["1", "2"]
    with pytest.raises(ValueError, match="near_duplicate=0"):
        PruneConfig(near_duplicate=0)


def test_sentence_windows():
    text = ("Vitamin D and bones\n\nVitamin D deficiency is common in winter (Fig. 2 shows it). Bone density fell "
            "by 3% in the group. Supplements restored it within a year.")
    assert len(sentences(text.split("\n\n")[1])) == 3  # "Fig. 2" does not end a sentence here
    w = sentence_windows(text, "Vitamin D and bones", WindowConfig(size=2, stride=1))
    assert len(w) == 2 and all(x.startswith("Vitamin D and bones. ") for x in w)
    assert "Fig. 2 shows it" in w[0] and w[1].endswith("within a year.")
    assert sentence_windows(text, None, WindowConfig(size=2, stride=2))[-1].endswith("within a year.")
    assert sentence_windows("", "Only a title", WindowConfig()) == ["Only a title"]
    with pytest.raises(ValueError, match="stride=3 must be in"):
        WindowConfig(size=2, stride=3)


def test_window_spans_point_at_their_sentences():
    text = ("Vitamin D and bones\n\nVitamin D deficiency is common in winter (Fig. 2 shows it).  Bone density fell "
            "by 3% in\nthe group. Supplements restored it within a year.")
    late = chunk_windows(text, "Vitamin D and bones", WindowConfig())
    # The title line is left out of the spans; each span holds exactly the window's sentences.
    assert [text[w.start:w.end].split() for w in late] == [w.text.split()[4:] for w in late]
    assert text[late[0].start:].startswith("Vitamin D deficiency") and text[:late[-1].end].endswith("a year.")
    assert [w.text for w in late] == sentence_windows(text, "Vitamin D and bones", WindowConfig(method="standalone"))
    assert chunk_windows("", "Only a title", WindowConfig()) == [Window(0, 0, "Only a title")]  # no tokens: alone


def test_window_method_is_part_of_the_snapshot_config():
    late, alone = WindowConfig(), WindowConfig(method="standalone")
    assert late.canonical()["method"] == "late" and late.fingerprint() != alone.fingerprint()
    with pytest.raises(ValueError, match="window method='mean' is not one of"):
        WindowConfig(method="mean")


def test_result_cache_key_and_ttl():
    assert request_key("s", "a  b", top_k=3) == request_key("s", "a b", top_k=3)
    assert request_key("s", "a b", top_k=3) != request_key("t", "a b", top_k=3)
    cache = ResultCache(maxsize=2, ttl_s=60)
    cache.put("k", 1)
    assert cache.get("k") == 1 and cache.get("x") is None and (cache.hits, cache.misses) == (1, 1)
    off = ResultCache(maxsize=0, ttl_s=60)
    off.put("k", 1)
    assert off.get("k") is None


TEXTS = {
    "volcano": "Volcanoes\n\nLava flows from volcanoes in Iceland. Eruptions are studied by geologists. "
               "Ash clouds disrupt flights over Europe.",
    "bread": "Baking\n\nBread needs flour, water and yeast. The dough rises for two hours. Ovens bake it at 220 C.",
    "rivers": "Rivers\n\nRivers carry sediment to the sea. Deltas form where rivers slow down. Floods renew soil.",
}


@pytest.fixture
def rt(tmp_path):
    runtime = make_runtime(tmp_path, chunk_size=256)
    ingest(runtime, [text_doc(k, v, topic=k) for k, v in TEXTS.items()])
    yield runtime
    runtime.close()


def test_pipeline_stages_on_a_real_snapshot(rt):
    snap = rt.manifest.live("default")
    p = rt.pipeline
    for rerank in ("late-interaction", "none"):
        res = p.run(snap.collection, "lava eruptions in iceland", 3, p.stages(rerank=rerank))
        assert res.hits[0].payload["doc_ids"] == ["volcano"]
        assert set(res.timings_ms) >= {"rewrite", "embed", "first_stage", "prune"}
        for h in res.hits:
            assert h.scores["dense"] is not None and "fused" in h.scores
    li = p.run(snap.collection, "lava eruptions in iceland", 3, p.stages(rerank="late-interaction"))
    assert li.hits[0].scores["windows"] > 0 and li.hits[0].score == li.hits[0].scores["rerank"]
    assert li.recipe["rerank"]["name"] == "late-interaction"
    # BM25 alone, dense alone, and filters inside Qdrant.
    assert p.run(snap.collection, "yeast dough", 1, p.stages(first_stage="bm25")).hits[0].payload["doc_ids"] == ["bread"]
    assert p.run(snap.collection, "yeast dough", 3, p.stages(first_stage="dense")).recipe["first_stage"]["legs"] == ["dense"]
    only = p.run(snap.collection, "lava", 3, p.stages(), filters={"metadata.topic": "rivers"})
    assert [h.payload["doc_ids"] for h in only.hits] == [["rivers"]]
    with pytest.raises(ValueError, match="rerank='cross-encoder' is not one of"):
        p.stages(rerank="cross-encoder")
    with pytest.raises(ValueError, match="first_stage='both'"):
        p.stages(first_stage="both")


def test_late_interaction_on_a_snapshot_built_without_windows(tmp_path):
    # A snapshot from before windows existed, or built with them off: the default stage still answers, from
    # its dense and BM25 legs, and says so (asking the store for a windows leg there fails on both backends).
    rt = make_runtime(tmp_path, chunk_size=256, windows_enabled=False)
    ingest(rt, [text_doc(k, v) for k, v in TEXTS.items()])
    answer = rt.searcher.search("default", "lava eruptions in iceland", 3, rerank="late-interaction")
    assert answer.hits[0].payload["doc_ids"] == ["volcano"] and answer.recipe["rerank"]["name"] == "late-interaction"
    assert "holds no sentence windows" in answer.warnings[0]
    assert answer.hits[0].scores["windows"] == 0.0 and answer.hits[0].scores["dense"] > 0
    rt.close()


def test_searcher_caches_by_snapshot_and_request(rt):
    a = rt.searcher.search("default", "floods and deltas", 2)
    b = rt.searcher.search("default", "floods   and deltas", 2)
    assert not a.cached and b.cached and [h.id for h in a.hits] == [h.id for h in b.hits]
    c = rt.searcher.search("default", "floods and deltas", 2, rerank="late-interaction")
    assert not c.cached  # another recipe is another answer
    ingest(rt, [text_doc("deserts", "Deserts\n\nDeserts get little rain. Dunes move with the wind.")])
    d = rt.searcher.search("default", "floods and deltas", 2)
    assert not d.cached and d.snapshot != a.snapshot  # a new live snapshot is a new key


def test_pseudo_relevance_feedback_adds_the_feedback_chunks_shared_terms(rt):
    from retrieval.feedback import FeedbackConfig, PseudoRelevanceRewriter

    prf = PseudoRelevanceRewriter(FeedbackConfig(documents=2, terms=3, weight=0.5))
    with pytest.raises(RuntimeError, match="bind"):
        prf.rewrite("lava")
    chunks = ["lava flows from the volcano", "volcano ash and lava clouds", "bread"]
    r = prf.bind(lambda q: chunks).rewrite("lava")
    assert r.extra_terms[0] == ("volcano", 0.5)  # in both feedback chunks; "lava" is the query's own
    assert len(r.extra_terms) == 3 and r.notes == {"feedback_chunks": 2, "terms_added": 3}
    snap = rt.manifest.live("default")
    res = rt.pipeline.run(snap.collection, "eruptions", 3, rt.pipeline.stages(rewrite="prf", rerank="none"))
    assert res.recipe["rewrite"]["name"] == "prf" and res.recipe["rewrite"]["notes"]["terms_added"] > 0
    with pytest.raises(ValueError, match="weight=2"):
        FeedbackConfig(weight=2)


def test_a_default_stage_that_is_not_configured_fails_at_wiring(tmp_path):
    rt = make_runtime(tmp_path, rewrite="llm")  # no SNAPDEX_LLM_BASE_URL
    try:
        with pytest.raises(ValueError, match="default rewrite='llm' is not one of"):
            rt.searcher
    finally:
        rt.close()
    with pytest.raises(ValueError, match="does not exist|not found|no model"):
        make_runtime(tmp_path / "x", rerank="cross-encoder", cross_encoder_path=tmp_path / "missing").searcher


def test_hits_past_the_rerank_depth_follow_in_first_stage_order_below_the_reranked(rt):
    snap = rt.manifest.live("default")
    stages = rt.pipeline.stages(rerank="late-interaction", rerank_depth=1)
    res = rt.pipeline.run(snap.collection, "rivers and bread and lava", 3, stages)
    assert "rerank" in res.hits[0].scores and all("rerank" not in h.scores for h in res.hits[1:])
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    fused = [h.scores["fused"] for h in res.hits[1:]]
    assert fused == sorted(fused, reverse=True)


def test_group_documents_ranks_documents_by_their_best_chunk():
    from retrieval.pruning import group_documents

    cands = [_cand("1", "a b c", "x"), _cand("2", "d e f", "x"), _cand("3", "g h i", "y"), _cand("4", "j k", "x"),
             _cand("5", "l m", "x"), _cand("6", "n o", "z"), _cand("7", "p q", "y")]
    for i, c in enumerate(cands):
        c.score = 10.0 - i
    hits, groups, dropped = group_documents(cands, 2, PruneConfig())
    # x's best 3 chunks (the default per document), then y's two; z would be the third document
    assert [(g.doc_id, g.score, g.hits) for g in groups] == [("x", 10.0, (0, 1, 2)), ("y", 8.0, (3, 4))]
    assert [h.id for h in hits] == ["1", "2", "4", "3", "7"] and dropped == 1
    hits, groups, _ = group_documents(cands, 5, PruneConfig(max_per_document=1))
    assert [g.doc_id for g in groups] == ["x", "y", "z"] and [h.id for h in hits] == ["1", "3", "6"]
    # near-identical chunks of two documents are two answers to a document query: nothing collapses
    same = "the same policy paragraph text here"
    twins = [_cand("a", same, "p"), _cand("b", same, "q")]
    assert [g.doc_id for g in group_documents(twins, 5, PruneConfig())[1]] == ["p", "q"]
    assert len(prune(twins, 5, PruneConfig())[0]) == 1


def _long_docs() -> dict[str, str]:
    # Each document is several chunks of 32 tokens; "lava" fills the first two documents' every chunk.
    lava = " ".join(f"Lava sentence number {i} flows hot from the vent." for i in range(30))
    rock = " ".join(f"Basalt rock {i} cools from lava slowly." for i in range(30))
    other = {f"d{i}": " ".join(f"Topic {i} sentence {j} about rivers and bread." for j in range(12)) for i in range(6)}
    return {"lava": lava, "rock": rock, **other}


def test_group_by_document_answers_top_k_documents_each_with_its_chunks(tmp_path):
    rt = make_runtime(tmp_path, chunk_size=32, chunk_overlap=0)
    try:
        ingest(rt, [text_doc(k, v) for k, v in _long_docs().items()])
        snap = rt.manifest.live("default")
        p = rt.pipeline
        flat = p.run(snap.collection, "lava flows", 3, p.stages())
        assert len({h.payload["doc_ids"][0] for h in flat.hits}) < 3  # three chunks of fewer documents
        for fusion in ("dbsf", "zscore"):
            res = p.run(snap.collection, "lava flows", 3, p.stages(fusion=fusion), group_by="document")
            docs = [g.doc_id for g in res.documents]
            assert len(docs) == 3 and docs[:2] in (["lava", "rock"], ["rock", "lava"])
            for g in res.documents:
                assert 1 <= len(g.hits) <= 3 and g.score == res.hits[g.hits[0]].score
                assert all(res.hits[i].payload["doc_ids"][0] == g.doc_id for i in g.hits)
            assert [i for g in res.documents for i in g.hits] == list(range(len(res.hits)))
            assert res.recipe["group_by"]["by"] == "document"
        with pytest.raises(ValueError, match="group_by='chunk' is not one of"):
            p.run(snap.collection, "lava", 3, p.stages(), group_by="chunk")
    finally:
        rt.close()


def test_zscore_fusion_scores_every_candidate_on_both_legs(rt):
    from encoders.lexical import query_vector

    snap = rt.manifest.live("default")
    p = rt.pipeline
    query = "lava rivers"
    res = p.run(snap.collection, query, 5, p.stages(fusion="zscore", rerank="none", fusion_dense=0.3))
    vector = p.embed_query((query,)).vector
    ids = [h.id for h in res.hits]
    legs = rt.store.rescore(snap.collection, ids, dense=vector, sparse=query_vector(query))
    # every hit carries both legs as the engine scores them, a term-less chunk's BM25 being 0
    for h in res.hits:
        assert h.scores["dense"] == pytest.approx(legs[h.id]["dense"], abs=1e-6)
        assert h.scores["bm25"] == pytest.approx(legs[h.id].get("bm25", 0.0), abs=1e-6)
    expected = weighted_zscore({"dense": [h.scores["dense"] for h in res.hits],
                                "bm25": [h.scores["bm25"] for h in res.hits]}, {"dense": 0.3, "bm25": 0.5})
    # all five documents are candidates (both legs return every chunk here), so the z-scores are over these hits
    assert len(ids) == len(TEXTS)
    np.testing.assert_allclose([h.scores["fused"] for h in res.hits], expected, atol=1e-6)
    assert res.recipe["first_stage"]["weights"] == {"dense": 0.3, "bm25": 0.5}
    with pytest.raises(ValueError, match="both 0"):
        p.stages(fusion="zscore", fusion_dense=0.0, fusion_bm25=0.0)


class _PayloadSpy:
    """The pipeline's store, noting whether each leg search asked for payloads; `force` hands them over anyway (a
    first stage that read every candidate's payload, as before)."""

    def __init__(self, store, force: bool) -> None:
        self._store, self.force, self.asked = store, force, []

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _leg(self, method, *args, with_payload=True, **kwargs):
        self.asked.append(with_payload)
        return getattr(self._store, method)(*args, with_payload=with_payload or self.force, **kwargs)

    def search_dense(self, *args, **kwargs):
        return self._leg("search_dense", *args, **kwargs)

    def search_sparse(self, *args, **kwargs):
        return self._leg("search_sparse", *args, **kwargs)


def test_zscore_fusion_reads_only_the_kept_hits_payloads_and_answers_as_if_it_read_all(rt):
    snap = rt.manifest.live("default")
    p = rt.pipeline
    real = p.store
    answers = {}
    try:
        for force in (True, False):
            p.store = spy = _PayloadSpy(real, force)
            answers[force] = [p.run(snap.collection, q, k, p.stages(fusion="zscore"), highlights=True,
                                    filters=filters)
                              for q in ("lava rivers", "bread", "sediment floods") for k in (1, 3)
                              for filters in (None, {"doc_id": ["volcano", "bread"]})]
            assert spy.asked and not any(spy.asked)  # the legs came without payloads
    finally:
        p.store = real
    for with_all, kept_only in zip(answers[True], answers[False]):
        assert [(h.id, h.payload, h.highlights) for h in kept_only.hits] == \
            [(h.id, h.payload, h.highlights) for h in with_all.hits]
        # The engine's float sums differ in the last bits from one call to the next.
        assert [h.score for h in kept_only.hits] == pytest.approx([h.score for h in with_all.hits], abs=1e-6)
        assert all(h.payload.get("text") for h in kept_only.hits)


def test_grouped_zscore_fuses_documents_as_the_plain_fusion_of_their_best_chunks(tmp_path):
    """Grouped by document, zscore is the plain fusion of two document rankers: each document's score on a leg is
    its best chunk's, z-scored over the documents. Here every chunk is a candidate, so it is checked exactly."""
    from encoders.lexical import query_vector

    docs = {
        # the words in one chunk, the meaning in others: fused by chunk, no chunk of it is good on both legs
        "split": "Basalt columns. " + " ".join(f"Molten stone {i} pours down the mountain side." for i in range(8)),
        "even": "Basalt lava flows pour down the mountain. " + " ".join(f"Other line {i} of rivers." for i in range(8)),
        **{f"d{i}": " ".join(f"Topic {i} sentence {j} about rivers and bread." for j in range(10)) for i in range(4)},
    }
    rt = make_runtime(tmp_path, chunk_size=32, chunk_overlap=0)
    try:
        ingest(rt, [text_doc(k, v) for k, v in docs.items()])
        snap = rt.manifest.live("default")
        p = rt.pipeline
        ids, offset = [], None
        while True:
            records, offset = rt.store.scroll(snap.collection, limit=256, offset=offset)
            ids += [(r.id, r.payload["doc_ids"][0]) for r in records]
            if offset is None:
                break
        assert len(ids) <= 100 and len({d for _, d in ids}) == len(docs)  # every chunk a candidate of each leg
        for query, wd, wb in (("basalt lava pours down the mountain", 0.5, 0.5), ("molten basalt stone", 0.3, 0.7)):
            res = p.run(snap.collection, query, len(docs), p.stages(fusion="zscore", rerank="none", fusion_dense=wd,
                                                                      fusion_bm25=wb), group_by="document")
            legs = rt.store.rescore(snap.collection, [i for i, _ in ids], dense=p.embed_query((query,)).vector,
                                    sparse=query_vector(query))
            names = sorted(docs)
            best = {leg: [max(legs[i].get(leg, 0.0) for i, d in ids if d == name) for name in names]
                    for leg in ("dense", "bm25")}
            expected = dict(zip(names, weighted_zscore(best, {"dense": wd, "bm25": wb})))
            assert [g.doc_id for g in res.documents] == sorted(names, key=lambda n: (-expected[n], n))
            for g in res.documents:
                assert g.score == pytest.approx(expected[g.doc_id], abs=1e-6)
                assert all(res.hits[i].payload["doc_ids"][0] == g.doc_id for i in g.hits)
            assert [i for g in res.documents for i in g.hits] == list(range(len(res.hits)))
            assert res.recipe["first_stage"]["grouped"] == "documents"
    finally:
        rt.close()
