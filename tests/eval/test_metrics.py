import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from eval.metrics import (
    QueryResult,
    compare,
    drilldown,
    evaluate,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact"

# Shared toy query: a is relevant (grade 1), c is highly relevant (grade 2); b, d are not judged.
REL = {"a": 1, "c": 2}
RANKED = ["b", "a", "d", "c"]
LOG2_3 = math.log2(3)  # discount at rank 2
LOG2_5 = math.log2(5)  # discount at rank 4
# Ideal ranking [c, a]: 2 / log2(2) + 1 / log2(3) = 2 + 0.63093 = 2.63093
IDCG = 2 / 1 + 1 / LOG2_3


# --- hand-computed single queries --------------------------------------------------------


def test_recall_precision_mrr_hit_rate_by_hand():
    # top 2 = [b, a]: one of the two relevant docs -> recall 1/2, precision 1/2
    assert recall_at_k(REL, RANKED, 2) == 0.5
    assert precision_at_k(REL, RANKED, 2) == 0.5
    # top 4 holds both relevant docs -> recall 2/2, precision 2/4
    assert recall_at_k(REL, RANKED, 4) == 1.0
    assert precision_at_k(REL, RANKED, 4) == 0.5
    # first relevant doc (a) at rank 2 -> 1/2; with k=1 it is cut off -> 0
    assert mrr_at_k(REL, RANKED, 10) == 0.5
    assert mrr_at_k(REL, RANKED, 1) == 0.0
    # rank 1 is b (not relevant); by rank 2 a relevant doc is in
    assert hit_rate_at_k(REL, RANKED, 1) == 0.0
    assert hit_rate_at_k(REL, RANKED, 2) == 1.0


def test_ndcg_graded_by_hand():
    # DCG@4 = 0/log2(2) + 1/log2(3) + 0/log2(4) + 2/log2(5) = 0.63093 + 0.86135 = 1.49228
    # IDCG@4 = 2.63093 (ideal [c, a]) -> nDCG@4 = 1.49228 / 2.63093 = 0.56721
    assert ndcg_at_k(REL, RANKED, 4) == pytest.approx((1 / LOG2_3 + 2 / LOG2_5) / IDCG, abs=1e-12)
    assert ndcg_at_k(REL, RANKED, 4) == pytest.approx(0.5672074169568709, abs=1e-12)
    # DCG@2 = 1/log2(3) = 0.63093; IDCG@2 = 2.63093 (both relevant fit) -> 0.23981
    assert ndcg_at_k(REL, RANKED, 2) == pytest.approx(0.23981246656813146, abs=1e-12)
    # DCG@1 = 0 (b) -> 0
    assert ndcg_at_k(REL, RANKED, 1) == 0.0
    # Linear gains, not 2^rel - 1: [c, a] is ideal -> exactly 1
    assert ndcg_at_k(REL, ["c", "a"], 2) == pytest.approx(1.0, abs=1e-12)
    # Swapped [a, c]: (1 + 2/log2(3)) / (2 + 1/log2(3)) = 2.26186 / 2.63093 = 0.85972
    assert ndcg_at_k(REL, ["a", "c"], 2) == pytest.approx((1 + 2 / LOG2_3) / IDCG, abs=1e-12)


def test_ideal_dcg_comes_from_qrels_not_from_retrieved():
    # Only a (grade 1) retrieved at rank 1: DCG = 1, but the ideal still puts c (grade 2) first:
    # nDCG@10 = 1 / 2.63093 = 0.38009, not 1.
    assert ndcg_at_k(REL, ["a"], 10) == pytest.approx(1 / IDCG, abs=1e-12)


def test_empty_ranking_scores_zero():
    for fn in (recall_at_k, precision_at_k, mrr_at_k, ndcg_at_k, hit_rate_at_k):
        assert fn(REL, [], 5) == 0.0


def test_duplicates_count_once_at_first_position():
    # [a, a, b, c] is read as [a, b, c]: the repeated a cannot fill two slots of the top 2.
    ranked = ["a", "a", "b", "c"]
    assert recall_at_k(REL, ranked, 2) == 0.5  # top 2 = [a, b] -> 1/2 (not 2/2)
    assert precision_at_k(REL, ranked, 2) == 0.5  # 1/2 (not 2/2)
    assert recall_at_k(REL, ranked, 3) == 1.0  # c moves up to rank 3
    # DCG@3 = 1/log2(2) + 0 + 2/log2(4) = 1 + 1 = 2; / 2.63093 = 0.76019
    assert ndcg_at_k(REL, ranked, 3) == pytest.approx(2 / IDCG, abs=1e-12)
    # Duplicate of c later on does not add gain twice: [c, a, c] == [c, a] -> 1.0
    assert ndcg_at_k(REL, ["c", "a", "c"], 3) == pytest.approx(1.0, abs=1e-12)


def test_k_larger_than_ranking():
    ranked = ["a"]
    assert recall_at_k(REL, ranked, 10) == 0.5  # 1 of 2 relevant
    assert precision_at_k(REL, ranked, 10) == 0.1  # 1 / k = 1/10 (trec_eval P_k), not 1/1
    assert mrr_at_k(REL, ranked, 10) == 1.0
    assert hit_rate_at_k(REL, ranked, 10) == 1.0
    assert ndcg_at_k(REL, ranked, 10) == pytest.approx(1 / IDCG, abs=1e-12)


def test_zero_graded_docs_are_not_relevant():
    rel = {"a": 1, "x": 0}
    # x judged non-relevant: recall denominator is 1, and x in the top 1 is no hit
    assert recall_at_k(rel, ["x", "a"], 2) == 1.0
    assert hit_rate_at_k(rel, ["x"], 1) == 0.0
    # no relevant doc at all: defined as 0 per query (evaluate skips the query)
    assert recall_at_k({"x": 0}, ["x"], 1) == 0.0
    assert ndcg_at_k({}, ["x"], 1) == 0.0


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_aggregate_and_per_query():
    qrels = {"q1": REL, "q2": {"z": 1}}
    run = {"q1": RANKED, "q2": ["y", "z"]}
    agg, results = evaluate(qrels, run, ks=(1, 2), mrr_k=10, ndcg_k=4)
    assert list(agg) == [
        "recall@1", "precision@1", "hit_rate@1",
        "recall@2", "precision@2", "hit_rate@2",
        "mrr@10", "ndcg@4",
    ]
    # q1 recall@2 = 1/2, q2 recall@2 = 1/1 -> mean 0.75
    assert agg["recall@2"] == 0.75
    # q1 precision@2 = 1/2, q2 = 1/2 -> 0.5
    assert agg["precision@2"] == 0.5
    # both miss at rank 1
    assert agg["hit_rate@1"] == 0.0
    # both first relevant at rank 2 -> mean of 1/2 and 1/2
    assert agg["mrr@10"] == 0.5
    # q1 nDCG@4 = 0.56721 (above); q2 = (1/log2(3)) / 1 = 0.63093 -> mean 0.59907
    assert agg["ndcg@4"] == pytest.approx((0.5672074169568709 + 1 / LOG2_3) / 2, abs=1e-12)

    q1 = results[0]
    assert isinstance(q1, QueryResult)
    assert q1.query_id == "q1"
    assert q1.ranks == {"a": 2, "c": 4}
    assert q1.retrieved == ["b", "a", "d", "c"]  # deepest cutoff is 10, ranking has 4
    assert q1.metrics["recall@1"] == 0.0


def test_evaluate_retrieved_is_cut_at_deepest_cutoff_and_deduplicated():
    qrels = {"q": {"d3": 1, "d9": 1}}
    run = {"q": ["d1", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"]}
    _, (res,) = evaluate(qrels, run, ks=(2,), mrr_k=3, ndcg_k=4)
    # deduplicated: d1..d9 (9 docs); deepest cutoff max(2, 3, 4) = 4
    assert res.retrieved == ["d1", "d2", "d3", "d4"]
    assert res.ranks == {"d3": 3, "d9": None}  # d9 is at rank 9, below what was evaluated
    assert res.metrics["mrr@3"] == pytest.approx(1 / 3)


def test_evaluate_skips_queries_without_relevant_docs():
    qrels = {
        "q1": {"a": 1},
        "q_zero": {"x": 0},  # judged, nothing relevant
        "q_empty": {},  # no judgments
    }
    run = {"q1": ["a"], "q_zero": ["x"], "q_empty": ["y"]}
    agg, results = evaluate(qrels, run, ks=(1,))
    # Only q1 counts: recall@1 = 1/1 -> mean 1.0 (would be 1/3 if the others counted as 0)
    assert agg["recall@1"] == 1.0
    assert [r.query_id for r in results] == ["q1"]


def test_evaluate_missing_and_extra_run_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": ["a"], "q_not_judged": ["b"]}
    agg, results = evaluate(qrels, run, ks=(1,))
    # q1 = 1, q2 missing from the run = empty ranking = 0; q_not_judged ignored -> 1/2
    assert agg["recall@1"] == 0.5
    assert agg["mrr@10"] == 0.5
    assert [r.query_id for r in results] == ["q1", "q2"]
    assert results[1].ranks == {"b": None}
    assert results[1].retrieved == []


def test_evaluate_with_no_evaluable_query_raises():
    with pytest.raises(ValueError, match="no query in qrels has a relevant document"):
        evaluate({"q": {"x": 0}}, {"q": ["x"]})


@pytest.mark.parametrize("bad_k", [0, -1, 1.5, True, "5", None])
def test_invalid_k_raises(bad_k):
    with pytest.raises(ValueError, match=r"k must be an integer >= 1, got " + re.escape(repr(bad_k))):
        recall_at_k(REL, RANKED, bad_k)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ks": ()}, "ks must be a non-empty sequence"),
        ({"ks": (5, 0)}, r"each k in ks must be an integer >= 1, got 0"),
        ({"ks": 5}, "ks must be a non-empty sequence"),
        ({"mrr_k": 0}, r"mrr_k must be an integer >= 1, got 0"),
        ({"ndcg_k": -3}, r"ndcg_k must be an integer >= 1, got -3"),
    ],
)
def test_evaluate_invalid_cutoffs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate({"q": {"a": 1}}, {"q": ["a"]}, **kwargs)


@pytest.mark.parametrize("bad_grade", [-1, 1.5, "1", True, None])
def test_invalid_relevance_raises(bad_grade):
    pattern = r"relevance of doc 'a'.* must be an integer >= 0, got " + re.escape(repr(bad_grade))
    with pytest.raises(ValueError, match=pattern):
        ndcg_at_k({"a": bad_grade}, ["a"], 1)
    with pytest.raises(ValueError, match=pattern):
        evaluate({"q": {"a": bad_grade}}, {"q": ["a"]})


def test_wrongly_typed_ids_raise():
    # int ids against str ids would silently score 0 everywhere: refuse them.
    with pytest.raises(ValueError, match="must be a str, got 1"):
        recall_at_k({"1": 1}, [1], 1)
    with pytest.raises(ValueError, match="must be a str, got 1"):
        recall_at_k({1: 1}, ["1"], 1)
    with pytest.raises(ValueError, match="must be a list of doc ids"):
        recall_at_k(REL, "abc", 1)
    with pytest.raises(ValueError, match="query id in run must be a str"):
        evaluate({"1": {"a": 1}}, {1: ["a"]})


# --- compare -------------------------------------------------------------------------------


def test_compare_gained_and_lost_sorted_by_change():
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}, "q4": {"e": 1, "f": 1}}
    before_run = {
        "q1": ["x", "y", "a"],  # recall@2 = 0
        "q2": ["c", "x"],  # recall@2 = 1
        "q3": ["d"],  # recall@2 = 1 (unchanged below)
        "q4": ["x", "e"],  # recall@2 = 1/2
    }
    after_run = {
        "q1": ["a", "b"],  # recall@2 = 1 -> +1
        "q2": ["x", "y", "c"],  # recall@2 = 0 -> -1 (c fell to rank 3)
        "q3": ["d", "x"],  # 1 -> 1, no change
        "q4": ["x", "y"],  # 0 -> -1/2 (e dropped out)
    }
    _, before = evaluate(qrels, before_run, ks=(2,))
    _, after = evaluate(qrels, after_run, ks=(2,))
    diff = compare(before, after, "recall@2")

    assert [e["query_id"] for e in diff["gained"]] == ["q1"]
    g = diff["gained"][0]
    assert (g["before"], g["after"], g["delta"]) == (0.0, 1.0, 1.0)
    assert g["entered"] == ["a", "b"] and g["dropped"] == []

    # largest loss first: q2 (-1) then q4 (-1/2); q3 unchanged is in neither list
    assert [e["query_id"] for e in diff["lost"]] == ["q2", "q4"]
    assert diff["lost"][0]["dropped"] == ["c"] and diff["lost"][0]["entered"] == []
    assert diff["lost"][1]["delta"] == -0.5 and diff["lost"][1]["dropped"] == ["e"]


def test_drilldown_names_missed_documents_and_what_ranked_instead():
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"d": 1}, "q4": {"e": 1}}
    _, before = evaluate(qrels, {"q1": ["a", "b"], "q2": ["x", "c"], "q3": ["d"], "q4": ["e", "u", "v"]}, ks=(3,))
    _, after = evaluate(qrels, {"q1": ["x", "a", "y", "b"], "q2": ["c"], "q3": ["d", "z"], "q4": ["u", "v", "e"]},
                        ks=(3,))
    d = drilldown(before, after, "recall@3", qrels)
    # q1: b fell from rank 2 to 4, out of the top 3: every non-relevant document of the top 3 took a place
    [q1] = d["lost"]
    assert q1["query_id"] == "q1" and q1["delta"] == -0.5 and q1["missed"] == ["b"] and q1["dropped"] == ["b"]
    assert q1["retrieved_instead"] == ["x", "y"]
    assert q1["ranks_before"] == {"a": 1, "b": 2} and q1["ranks_after"] == {"a": 2, "b": 4}
    assert d["gained"] == [] and d["unchanged"] == 3  # q2 (c 2 -> 1), q3, q4 keep recall@3
    # On a rank-sensitive metric, q4's e fell from 1 to 3: only what now ranks above it came "instead".
    _, b10 = evaluate(qrels, {"q4": ["e", "u", "v"]}, ks=(3,))
    _, a10 = evaluate(qrels, {"q4": ["u", "v", "e", "w"]}, ks=(3,))
    [q4] = drilldown(b10, a10, "mrr@10", qrels)["lost"]
    assert q4["retrieved_instead"] == ["u", "v"] and q4["missed"] == [] and q4["ranks_after"] == {"e": 3}


def test_compare_rejects_unknown_metric_and_mismatched_queries():
    _, a = evaluate({"q1": {"a": 1}}, {"q1": ["a"]}, ks=(1,))
    _, b = evaluate({"q2": {"a": 1}}, {"q2": ["a"]}, ks=(1,))
    with pytest.raises(ValueError, match="metric 'recall@5' missing"):
        compare(a, a, "recall@5")
    with pytest.raises(ValueError, match="name@k"):
        compare(a, a, "recall")
    with pytest.raises(ValueError, match="same queries"):
        compare(a, b, "recall@1")


# --- against ranx on a real BM25 run over SciFact ------------------------------------------

KS = (1, 5, 10, 20, 100)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@pytest.fixture(scope="module")
def scifact_bm25():
    """BM25Okapi top-100 run for the SciFact test queries, built once for this module."""
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip(f"SciFact data not found at {SCIFACT} (expected shared/data/scifact beside the repo)")
    from rank_bm25 import BM25Okapi

    doc_ids, docs = [], []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            doc_ids.append(d["_id"])
            docs.append(_tokens(d["title"] + " " + d["text"]))
    queries = {}
    with open(SCIFACT / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels" / "test.tsv") as f:
        next(f)  # header: query-id corpus-id score
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)

    bm25 = BM25Okapi(docs)
    run = {}
    for qid in qrels:
        scores = bm25.get_scores(_tokens(queries[qid]))
        # Stable sort: equal scores keep corpus order, so the run is deterministic.
        top = np.argsort(-scores, kind="stable")[:100]
        run[qid] = [doc_ids[i] for i in top]
    return qrels, run, queries


def _ranx_evaluate(qrels, run, metrics):
    ranx = pytest.importorskip("ranx", reason="reference implementation ranx not installed (dev extra)")
    # ranx orders a query's docs by score: feed strictly decreasing rank-derived scores so
    # its order is exactly our list (BM25 ties cannot be reordered by its sort).
    ranx_run = ranx.Run({q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()})
    # Convention difference: ranx averages queries without relevant docs in as 0, we skip them.
    # Hand it only queries that have one (all 300 SciFact test queries do; stated for clarity).
    ranx_qrels = ranx.Qrels({q: rel for q, rel in qrels.items() if any(g > 0 for g in rel.values())})
    # make_comparable: qrels queries missing from the run become empty rankings and run-only
    # queries are dropped -- the same rule evaluate() applies.
    means = ranx.evaluate(ranx_qrels, ranx_run, metrics, make_comparable=True)
    return means, ranx_run.scores


def _ranx_metric_names(ks, mrr_k=10, ndcg_k=10):
    # ranx's names coincide with ours; "ndcg" in ranx is the linear-gain (Järvelin) form,
    # as trec_eval -- not ranx's "ndcg_burges" (2^rel - 1). "mrr@10" in ranx does apply the
    # cutoff (its fix_k), and "precision@k" divides by k even when fewer docs are retrieved.
    names = []
    for k in ks:
        names += [f"recall@{k}", f"precision@{k}", f"hit_rate@{k}"]
    return names + [f"mrr@{mrr_k}", f"ndcg@{ndcg_k}"]


# ranx's numba kernels warn once, at compile time, about a uint64 -> int64 cast of its own.
ranx_warning = pytest.mark.filterwarnings("ignore:.*unsafe cast from uint64 to int64")


@ranx_warning
def test_matches_ranx_on_scifact_bm25(scifact_bm25):
    qrels, run, _ = scifact_bm25
    ours, per_query = evaluate(qrels, run, ks=KS, mrr_k=10, ndcg_k=10)
    names = _ranx_metric_names(KS)
    ref, ref_per_query = _ranx_evaluate(qrels, run, names)

    assert len(per_query) == 300
    assert list(ours) == names
    for name in names:
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-9), name
        for r in per_query:
            assert r.metrics[name] == pytest.approx(float(ref_per_query[name][r.query_id]), abs=1e-9), (
                name,
                r.query_id,
            )
    # Sanity against the published range for BM25 on SciFact (0.665-0.69 nDCG@10, README):
    # a simple whitespace tokeniser without stemming lands a little lower.
    assert 0.55 < ours["ndcg@10"] < 0.72
    assert 0.80 < ours["recall@100"] < 0.95


@ranx_warning
def test_matches_ranx_with_missing_extra_and_duplicated_queries(scifact_bm25):
    qrels, run, queries = scifact_bm25
    test_ids = list(qrels)
    # Drop 10 judged queries (empty rankings -> 0), add 5 unjudged ones (ignored), and repeat
    # every doc of the remaining rankings (our dedupe must give back ranx's duplicate-free run).
    dropped = set(test_ids[:10])
    extra = [q for q in queries if q not in qrels][:5]
    ours_run = {q: [d for d in docs for _ in range(2)] for q, docs in run.items() if q not in dropped}
    ours_run.update({q: run[test_ids[-1]] for q in extra})
    ranx_run = {q: docs for q, docs in run.items() if q not in dropped}
    ranx_run.update({q: run[test_ids[-1]] for q in extra})

    ours, per_query = evaluate(qrels, ours_run, ks=KS)
    names = _ranx_metric_names(KS)
    ref, _ = _ranx_evaluate(qrels, ranx_run, names)
    for name in names:
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-9), name
    assert len(per_query) == 300
    assert all(r.metrics["recall@100"] == 0.0 for r in per_query if r.query_id in dropped)


@ranx_warning
def test_graded_ndcg_matches_ranx(scifact_bm25):
    # SciFact grades are all 1, which cannot tell linear gains from 2^rel - 1. Grade the same
    # judgments 1..3 (deterministically from the doc id) and judge each query's rank-5 doc as
    # explicitly non-relevant (0) when it is unjudged, then compare at two nDCG/MRR depths.
    qrels, run, _ = scifact_bm25
    graded = {}
    for q, rel in qrels.items():
        graded[q] = {d: 1 + int(d) % 3 for d in rel}
        graded[q].setdefault(run[q][4], 0)
    assert {g for rel in graded.values() for g in rel.values()} == {0, 1, 2, 3}
    for mrr_k, ndcg_k in ((10, 10), (100, 100)):
        ours, _ = evaluate(graded, run, ks=KS, mrr_k=mrr_k, ndcg_k=ndcg_k)
        names = _ranx_metric_names(KS, mrr_k, ndcg_k)
        ref, _ = _ranx_evaluate(graded, run, names)
        for name in names:
            assert ours[name] == pytest.approx(float(ref[name]), abs=1e-9), name


def test_compare_on_real_runs(scifact_bm25):
    qrels, run, _ = scifact_bm25
    # "after" = the BM25 run with its top 2 swapped: only queries with a relevant doc at
    # rank 1 or 2 (but not both) can change at mrr@10.
    swapped = {q: docs[1:2] + docs[:1] + docs[2:] for q, docs in run.items()}
    _, before = evaluate(qrels, run)
    _, after = evaluate(qrels, swapped)
    diff = compare(before, after, "mrr@10")
    assert diff["gained"] and diff["lost"]
    for e in diff["lost"]:
        assert e["before"] == 1.0 and e["after"] == 0.5  # relevant doc pushed from 1 to 2
    for e in diff["gained"]:
        assert e["before"] == 0.5 and e["after"] == 1.0
    # recall@10 is unchanged by a swap inside the top 10
    assert compare(before, after, "recall@10") == {"gained": [], "lost": []}
