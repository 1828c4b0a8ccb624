"""The eval command's parts on a small BEIR-format dataset carved from SciFact, with the deterministic embedder."""

from __future__ import annotations

import json

import pytest

from eval.beir import BeirDataset
from eval.runner import doc_ranking, run_queries
from snapdex.evaluate import evaluate_dataset, index_dataset, table, variants
from harness.helpers import make_runtime


@pytest.fixture
def tiny(tmp_path, scifact_dir):
    """12 test queries, their relevant abstracts and 60 others, in BEIR layout."""
    qrels = BeirDataset(scifact_dir).qrels("test")
    qids = sorted(qrels)[:12]
    wanted = {d for q in qids for d in qrels[q]}
    out = tmp_path / "tiny"
    (out / "qrels").mkdir(parents=True)
    kept = 0
    with open(scifact_dir / "corpus.jsonl") as src, open(out / "corpus.jsonl", "w") as dst:
        for line in src:
            doc = json.loads(line)
            if doc["_id"] in wanted or kept < 60:
                kept += doc["_id"] not in wanted
                dst.write(line)
    with open(scifact_dir / "queries.jsonl") as src, open(out / "queries.jsonl", "w") as dst:
        dst.writelines(line for line in src if json.loads(line)["_id"] in qids)
    with open(out / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"{q}\t{d}\t{s}\n" for q in qids for d, s in qrels[q].items())
    return BeirDataset(out)


def test_beir_dataset_reads_every_part(tiny):
    assert tiny.splits() == ["test"]
    qrels = tiny.qrels("test")
    assert len(qrels) == 12 and all(v for v in qrels.values())
    assert set(tiny.queries(set(qrels))) == set(qrels)
    docs = list(tiny.documents())
    assert all(d["text"].startswith(d["metadata"]["title"]) for d in docs if d["metadata"])
    with pytest.raises(ValueError, match="split 'train' not found"):
        tiny.qrels("train")
    with pytest.raises(ValueError, match="not a BEIR dataset"):
        BeirDataset(tiny.path / "qrels")


def test_doc_ranking_keeps_first_appearance():
    assert doc_ranking([["a"], ["b", "a"], ["c"], ["b"]]) == ["a", "b", "c"]


def test_run_queries_scores_the_implied_document_ranking():
    qrels = {"q1": {"a": 1}, "q2": {"z": 1}}
    run = run_queries("x", lambda q: [["a"], ["b"]] if q == "one" else [["b"]], {"q1": "one", "q2": "two"}, qrels)
    assert run.metrics["recall@1"] == 0.5 and run.metrics["mrr@10"] == 0.5
    assert run.latency_ms["p95"] >= run.latency_ms["p50"] >= 0


def test_every_variant_runs_on_one_snapshot(tmp_path, tiny):
    rt = make_runtime(tmp_path)
    try:
        first = index_dataset(rt, tiny, "eval-tiny")
        assert index_dataset(rt, tiny, "eval-tiny") == first  # nothing new: the same snapshot
        snap, runs = evaluate_dataset(rt, tiny, "test", "eval-tiny")
        assert snap == first
        assert set(runs) == set(variants(rt)) >= {"bm25", "dense", "hybrid", "hybrid + late-interaction",
                                                  "hybrid + rewrite:normalize", "default pipeline"}
        # BM25 over 70-odd abstracts finds most of the relevant ones in its top 100.
        assert runs["bm25"].metrics["recall@100"] > 0.8
        for r in runs.values():
            assert len(r.per_query) == 12 and 0 <= r.metrics["ndcg@10"] <= 1
        text = table(runs)
        assert "hybrid + late-interaction" in text and "0.744" in text
    finally:
        rt.close()
