"""Self-tuning on a tenant's labelled queries, in process with the deterministic embedder: a tenant for which the
global default is wrong gets a profile that the held-out test adopts; one for which it is right keeps it; answers
and evaluation runs name the profile; rollback is one call; a profile this service cannot run gives way."""

from __future__ import annotations

import random

import pytest

from errors import InvalidInput
from eval.store import LabelledQuery
from index_snapshots.tuning import TuningRequest
from harness.helpers import ingest, make_runtime, text_doc

COMMON = "report team project update meeting budget plan review office system data customer".split()


def corpus(n: int = 48, seed: int = 7) -> tuple[dict[str, str], dict[str, str]]:
    """Documents of common words with two rare ones far apart; each query: one rare word and many common ones.
    BM25 finds the document by its rare word; sentence windows, full of common words, mislead."""
    rng = random.Random(seed)
    docs, queries = {}, {}
    for i in range(n):
        sentences = []
        for j in range(8):
            words = rng.sample(COMMON, 5)
            if j in (0, 7):
                words.insert(2, f"zq{i}{'ab'[j == 7]}")
            sentences.append(" ".join(words).capitalize() + ".")
        docs[f"d{i}"] = f"Doc {i}\n\n" + " ".join(sentences)
        queries[f"q{i}"] = " ".join([f"zq{i}b"] + rng.sample(COMMON, 8))
    return docs, queries


def make(tmp_path, **settings):
    rt = make_runtime(tmp_path, chunk_size=512, **settings)
    docs, queries = corpus()
    ingest(rt, [text_doc(k, v) for k, v in docs.items()])
    labelled = [LabelledQuery(q, t, {f"d{q[1:]}": 1}) for q, t in queries.items()]
    rt.evals.put_query_set("default", "synthetic", labelled)
    return rt, queries


def tune(rt, **request):
    run = rt.profiles.create_tuning("default", TuningRequest(**request).as_dict())
    result = rt.tuner.run("default", run.id)
    return rt.profiles.tuning("default", run.id), result


def test_a_default_that_does_not_fit_the_tenant_is_replaced_by_a_tuned_profile(tmp_path):
    # The global default leans on sentence windows (weight 3) that this tenant's documents make misleading.
    rt, queries = make(tmp_path, rerank="late-interaction", late_weight_windows=3.0, late_weight_bm25=0.5)
    try:
        before = rt.searcher.search("default", queries["q3"], 5)
        assert before.recipe["profile"] == {"version": 0, "source": "global default"}
        key_before = rt.evaluator.recipe("default")

        run, result = tune(rt)
        assert run.status == "done" and result["decision"] == "adopted", result["reason"]
        s = result["scores"]
        assert s["tuned_cv"] > s["live"] + 0.2 and s["test"]["ci_low"] > 0 and s["queries"] == 48
        assert s["live"] == s["default"] and len(s["folds_chosen"]) == 5
        assert run.progress["folds_done"] == 5 and run.progress["configurations"] == result["configurations"] > 3
        live = rt.profiles.live("default")
        assert live.version == 1 == result["profile"] == run.profile_version and live.status == "live"
        assert live.params == result["params"] and "interval" in live.reason

        rt.searcher._profiles.clear()  # the TTL cache: a new profile reaches this process within PROFILE_TTL_S
        after = rt.searcher.search("default", queries["q3"], 5)
        assert after.recipe["profile"] == {"version": 1, "source": "tuned"}
        assert {k: after.recipe["stages"][k] for k in live.params} == live.params
        assert after.hits[0].payload["doc_ids"] == ["d3"]
        assert rt.evaluator.recipe("default") != key_before  # evaluation runs are keyed by the profile too

        assert rt.profiles.rollback("default") == (1, 0)
        rt.searcher._profiles.clear()
        assert rt.searcher.search("default", queries["q3"], 5).recipe["profile"]["version"] == 0
        assert rt.profiles.get("default", 1).status == "retired"
        assert rt.profiles.rollback("default") == (0, 1)  # and back again, as snapshots do
        assert [w["action"] for w in rt.profiles.switches("default")] == ["adopt", "rollback", "rollback"]
    finally:
        rt.close()


def test_a_default_that_fits_stays_and_a_redelivered_run_repeats_nothing(tmp_path):
    rt, _ = make(tmp_path)  # the service's own defaults: BM25 carries these queries already
    try:
        run, result = tune(rt, folds=3)
        assert result["decision"] in ("unchanged", "rejected"), result
        assert rt.profiles.live("default").version == 0
        again = rt.tuner.run("default", run.id)
        assert again == result  # the run is settled: a second delivery returns what it recorded
    finally:
        rt.close()


def test_tuning_refuses_what_it_cannot_do_with_reasons(tmp_path):
    rt = make_runtime(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="no labelled query set"):  # a 422
            rt.tuner.check("default", TuningRequest())
        ingest(rt, [text_doc("a", "Alpha doc\n\nSome words here.")])
        rt.evals.put_query_set("default", "tiny", [LabelledQuery("q1", "alpha", {"a": 1})])
        with pytest.raises(InvalidInput, match="at least 20 labelled queries; tenant default has 1"):
            rt.tuner.check("default", TuningRequest())
        with pytest.raises(InvalidInput, match="metric 'ndcg@7'"):
            rt.tuner.check("default", TuningRequest(metric="ndcg@7"))
        with pytest.raises(InvalidInput, match="no active query set 'other'"):
            rt.tuner.check("default", TuningRequest(query_sets=("other",)))
    finally:
        rt.close()


def test_a_profile_this_service_cannot_run_gives_way_to_the_default_with_a_warning(tmp_path):
    rt = make_runtime(tmp_path)
    try:
        ingest(rt, [text_doc("a", "Alpha doc\n\nSome words about alpha here.")])
        rt.profiles.record("default", {"rerank": "cross-encoder"}, {}, "made elsewhere", None, adopt=True)
        answer = rt.searcher.search("default", "alpha", 1)
        assert answer.hits and "cannot run here" in answer.warnings[0] and answer.recipe["stages"]["rerank"] == "none"
        with pytest.raises(InvalidInput, match="rerank='cross-encoder'"):  # asked by the request itself: a 422
            rt.searcher.search("default", "alpha", 1, rerank="cross-encoder")
    finally:
        rt.close()
