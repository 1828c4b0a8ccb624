"""BM25 as sparse vectors in Qdrant (saturated tf in the vector, IDF from Qdrant's modifier, the query's term
frequencies on the query side) against plain in-process implementations given the same tokens: rank-bm25 and
bm25s. Short queries (titles, a few free-text ones) and long ones (whole SciFact abstracts used as queries, where
terms repeat), because weighting each query term once only departs from BM25 on the long ones."""

from __future__ import annotations

import itertools
import json
import math
import uuid

import bm25s
import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from encoders.lexical import BM25Params, average_length, document_vector, query_vector, term_counts, tokenize
from store import EdgeStore, Point

PARAMS = BM25Params(k1=1.2, b=0.75)


class LuceneIdfBM25(BM25Okapi):
    """rank-bm25's Okapi scoring with the IDF Qdrant's modifier applies: ln((N - n + 0.5) / (n + 0.5) + 1).
    (rank-bm25's own IDF drops the "+ 1" and floors negative values, which reorders common-term queries.)"""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log((self.corpus_size - freq + 0.5) / (freq + 0.5) + 1)


@pytest.fixture(scope="module")
def scifact(scifact_dir):
    with open(scifact_dir / "corpus.jsonl") as fh:
        docs = [json.loads(line) for line in itertools.islice(fh, 460)]
    texts = [f"{d['title']}\n\n{d['text']}" for d in docs]
    return texts[:400], texts[400:]  # the indexed corpus, and 60 abstracts that serve as long queries


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, scifact):
    corpus, _ = scifact
    counts = [term_counts(t) for t in corpus]
    avgdl = average_length(counts)
    store = EdgeStore(tmp_path_factory.mktemp("bm25") / "edge")
    store.create_collection("bm25", 4)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(corpus))]
    rng = np.random.default_rng(0)
    store.upsert("bm25", [Point(i, rng.normal(size=4), document_vector(c, avgdl, PARAMS), {"n": n})
                          for n, (i, c) in enumerate(zip(ids, counts))])
    yield store, ids
    store.close()


def _queries(corpus: list[str], long_texts: list[str]) -> tuple[list[str], list[str]]:
    short = [" ".join(t.split("\n")[0].split()[:6]) for t in corpus[::20]]
    short += ["cancer cells tumour growth", "vitamin D deficiency and bone density", "the of and"]
    return short, long_texts


def _qdrant_scores(store: EdgeStore, ids: list[str], query: str) -> np.ndarray:
    """Every document's BM25 score in Qdrant (0 where it shares no term with the query)."""
    scored = store.rescore("bm25", ids, sparse=query_vector(query))
    return np.array([scored[i].get("bm25", 0.0) for i in ids])


def test_sparse_bm25_in_qdrant_scores_like_rank_bm25_on_short_and_long_queries(indexed, scifact):
    store, ids = indexed
    corpus, long_texts = scifact
    reference = LuceneIdfBM25([tokenize(t) for t in corpus], k1=PARAMS.k1, b=PARAMS.b)
    short, long = _queries(corpus, long_texts)
    repeats = 0
    worst = 0.0
    for q in short + long:
        tokens = tokenize(q)  # BM25 sums over query tokens: repeats included
        if not tokens:
            continue
        repeats += len(tokens) > len(set(tokens))
        want = reference.get_scores(tokens)
        got = _qdrant_scores(store, ids, q)
        # Every document's score, not only the top: Qdrant stores weights as float32.
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5), q[:80]
        worst = max(worst, float(np.max(np.abs(got - want))))
        # And Qdrant's own ranking is the reference's top 10.
        positive = int((want > 0).sum())
        best = sorted(range(len(corpus)), key=lambda i: (-want[i], ids[i]))[: min(10, positive)]
        hits = store.search_sparse("bm25", query_vector(q), 10)
        assert [h.payload["n"] for h in hits][: len(best)] == best, q[:80]
    assert repeats >= 55, "the long queries must repeat terms, or this test shows nothing"
    print(f"largest |score difference| against rank-bm25 over {len(short) + len(long)} queries: {worst:.2e}")


def test_sparse_bm25_in_qdrant_scores_like_bm25s_on_long_queries(indexed, scifact):
    """bm25s's Lucene variant drops BM25's constant factor (k1 + 1) from the saturated term frequency; otherwise the
    same formula and IDF. Its scores times (k1 + 1) are ours, and it sums over query tokens with repeats too."""
    store, ids = indexed
    corpus, long_texts = scifact
    reference = bm25s.BM25(k1=PARAMS.k1, b=PARAMS.b, method="lucene")
    reference.index([tokenize(t) for t in corpus], show_progress=False)
    worst = 0.0
    for q in long_texts:
        tokens = [t for t in tokenize(q) if t in reference.vocab_dict]  # bm25s refuses terms it has not seen
        want = reference.get_scores(tokens) * (PARAMS.k1 + 1)
        got = _qdrant_scores(store, ids, q)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-4), q[:80]
        worst = max(worst, float(np.max(np.abs(got - want))))
    print(f"largest |score difference| against bm25s x (k1 + 1) over {len(long_texts)} long queries: {worst:.2e}")


def test_weighting_each_query_term_once_would_not_be_bm25(indexed, scifact):
    """The departure this reference test guards against: on a long query the once-per-term weighting scores differ."""
    store, ids = indexed
    corpus, long_texts = scifact
    reference = LuceneIdfBM25([tokenize(t) for t in corpus], k1=PARAMS.k1, b=PARAMS.b)
    q = long_texts[0]
    once = reference.get_scores(sorted(set(tokenize(q))))
    got = _qdrant_scores(store, ids, q)
    assert np.max(np.abs(got - once)) > 0.5
