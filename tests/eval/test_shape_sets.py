"""The query sets of other shapes (bench/data: pydocs-headings, pydocs-faq, pydocs-topics, manpages-de) as committed:
readable as BEIR, labels that point at real documents, splits that share no page, each set of the shape it claims;
and the plain fusions bench/shapes.py measures the default against, on hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eval.beir import BeirDataset

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


def _metadata(ds: BeirDataset) -> dict[str, dict]:
    with (ds.path / "queries.jsonl").open(encoding="utf-8") as fh:
        return {q["_id"]: q["metadata"] for q in map(json.loads, fh)}


@pytest.mark.parametrize("name, least_queries, least_relevant", [
    ("pydocs-headings", 400, 1), ("pydocs-faq", 40, 1), ("pydocs-topics", 50, 5), ("manpages-de", 350, 1)])
def test_committed_shape_is_sound(name, least_queries, least_relevant):
    ds = BeirDataset(DATA / name)
    assert ds.splits() == ["dev", "test"]
    docs = {d["id"]: d for d in ds.documents()}
    meta = _metadata(ds)
    groups: dict[str, set[str]] = {}
    for split in ds.splits():
        qrels = ds.qrels(split)
        queries = ds.queries(set(qrels))
        assert len(queries) == len(qrels) >= least_queries
        for qid, rel in qrels.items():
            assert set(rel) <= set(docs) and len(rel) >= least_relevant, qid
            assert meta[qid]["split"] == split
            for page in meta[qid].get("pages", [meta[qid].get("page")]):
                groups.setdefault(page, set()).add(split)
    assert all(len(s) == 1 for s in groups.values()), "a page gives queries to both splits"
    if name.startswith("pydocs-"):
        assert not any(d["metadata"] for d in docs.values())  # no title: a heading is not in its own document


def test_manpages_de_is_german():
    from ingest.language import detect_language

    docs = list(BeirDataset(DATA / "manpages-de").documents())
    german = sum(detect_language(d["text"]) == "de" for d in docs)
    assert german >= 0.95 * len(docs), german  # 1,145 of 1,175; the rest are pages left mostly untranslated


def test_plain_fusions_by_hand():
    from bench.shapes import rrf, zfuse

    dense, bm25 = np.array([0.9, 0.5, 0.1]), np.array([0.0, 3.0, 0.0])
    # z(dense) = [1.2247, 0, -1.2247], z(bm25) = [-0.7071, 1.4142, -0.7071]
    np.testing.assert_allclose(zfuse(dense, bm25), [0.2588, 0.7071, -0.9659], atol=1e-4)
    # ranks from 1, k 60; a document sharing no term with the query is not in the BM25 list
    np.testing.assert_allclose(rrf(dense, bm25), [1 / 61, 1 / 62 + 1 / 61, 1 / 63])
