"""Queries made from a tenant's own documents (eval/synthetic.py), for tuning without labels."""

from __future__ import annotations

import pytest

from eval.synthetic import SourceDocument, synthetic_queries
from index_snapshots.tuning import TuningRequest
from harness.helpers import ingest, make_runtime, text_doc

LONG = ("The river carries fine sediment down to the wide sea every spring. "
        "Engineers measured the flow rate at three stations along the valley floor. ")


def _docs() -> list[SourceDocument]:
    return [
        SourceDocument("a", "River sediment study", [("a1", LONG, ("River sediment study", "Flow measurements")),
                                                      ("a2", "Short tail.", ("River sediment study", "Summary"))]),
        SourceDocument("b", "Baking bread", [("b1", "Bread needs flour and water and yeast to rise well.", ())]),
        SourceDocument("c", "Baking bread", [("c1", "Another bread text.", ("Summary",))]),   # same title as b
        SourceDocument("d", "Lava", [("d1", "Lava flows.", ("Eruption history notes",))]),    # one-word title
    ]


def test_titles_headings_and_held_out_sentences():
    made = synthetic_queries(_docs(), per_kind=10, seed=1)
    by_kind = {k: sorted((made.queries[q], next(iter(made.qrels[q]))) for q in made.kinds if made.kinds[q] == k)
               for k in ("title", "heading", "sentence")}
    # a title two documents share says nothing of which one; a one-word title is too vague
    assert by_kind["title"] == [("River sediment study", "a")]
    # "Summary" is a heading of two documents; the title repeated as a heading is not a second query
    assert by_kind["heading"] == [("Eruption history notes", "d"), ("Flow measurements", "a")]
    # only a document of two chunks or more gives a sentence, and its chunk is left out of the ranking
    [(sentence, doc)] = by_kind["sentence"]
    assert doc == "a" and sentence in LONG
    [qid] = [q for q in made.kinds if made.kinds[q] == "sentence"]
    assert made.exclude[qid] == frozenset({"a1"})
    assert made.counts() == {"title": 1, "heading": 2, "sentence": 1}
    assert synthetic_queries(_docs(), per_kind=10, seed=1).queries == made.queries  # deterministic


def test_tuning_without_labels_on_a_tenant_that_has_none(tmp_path):
    rt = make_runtime(tmp_path, chunk_size=32, chunk_overlap=0)
    try:
        words = "alpha beta gamma delta river stone cloud field market harbour station garden".split()
        docs = {f"d{i}": f"Title {words[i % 12]} {i}\n\n" + " ".join(
            f"Sentence {j} of {words[(i + j) % 12]} report {i} mentions {words[(i * j) % 12]} here." for j in range(12))
            for i in range(30)}
        ingest(rt, [text_doc(k, v, title=f"Report {words[k2 % 12]} number {k2}") for k2, (k, v) in
                    enumerate(docs.items())])
        with pytest.raises(ValueError, match="no query_sets"):
            TuningRequest(query_sets=("faq",), synthetic=True)
        run = rt.profiles.create_tuning("default", TuningRequest(synthetic=True, folds=3).as_dict())
        result = rt.tuner.run("default", run.id)
        assert result["decision"] in ("adopted", "rejected", "unchanged")
        counts = result["scores"]["synthetic"]
        assert counts["title"] == 30 and counts["sentence"] == 30 and result["scores"]["queries"] >= 60
        assert rt.profiles.tuning("default", run.id).request["synthetic"] is True
    finally:
        rt.close()
