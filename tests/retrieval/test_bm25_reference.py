"""BM25 as sparse vectors in Qdrant (saturated tf in the vector, IDF from Qdrant's modifier) against a plain
in-process implementation, rank-bm25, given the same tokens and the same formula."""

from __future__ import annotations

import itertools
import json
import math
import uuid

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from encoders.lexical import BM25Params, average_length, document_vector, query_vector, term_counts, tokenize
from store import EdgeStore, Point


class LuceneIdfBM25(BM25Okapi):
    """rank-bm25's Okapi scoring with the IDF Qdrant's modifier applies: ln((N - n + 0.5) / (n + 0.5) + 1).
    (rank-bm25's own IDF drops the "+ 1" and floors negative values, which reorders common-term queries.)"""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log((self.corpus_size - freq + 0.5) / (freq + 0.5) + 1)


@pytest.fixture(scope="module")
def corpus(scifact_dir):
    with open(scifact_dir / "corpus.jsonl") as fh:
        docs = [json.loads(line) for line in itertools.islice(fh, 400)]
    return [f"{d['title']}\n\n{d['text']}" for d in docs]


def test_sparse_bm25_in_qdrant_ranks_like_rank_bm25(tmp_path, corpus):
    params = BM25Params(k1=1.2, b=0.75)
    counts = [term_counts(t) for t in corpus]
    avgdl = average_length(counts)
    store = EdgeStore(tmp_path / "edge")
    store.create_collection("bm25", 4)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(corpus))]
    rng = np.random.default_rng(0)
    store.upsert("bm25", [Point(i, rng.normal(size=4), document_vector(c, avgdl, params), {"n": n})
                          for n, (i, c) in enumerate(zip(ids, counts))])
    reference = LuceneIdfBM25([tokenize(t) for t in corpus], k1=params.k1, b=params.b)
    # Queries: the titles' first words and a few free-text ones, each term once as the query vector has them.
    queries = [" ".join(t.split("\n")[0].split()[:6]) for t in corpus[::20]]
    queries += ["cancer cells tumour growth", "vitamin D deficiency and bone density", "the of and"]
    compared = 0
    for q in queries:
        terms = sorted(set(tokenize(q)))
        want = reference.get_scores(terms)
        hits = store.search_sparse("bm25", query_vector(q), 10) if terms else []
        positive = int((want > 0).sum())
        if not terms:
            continue
        best = sorted(range(len(corpus)), key=lambda i: (-want[i], ids[i]))[: min(10, positive)]
        assert [h.payload["n"] for h in hits][: len(best)] == best, q
        for h in hits[: len(best)]:
            assert h.score == pytest.approx(want[h.payload["n"]], rel=1e-4)
        compared += 1
    assert compared >= 20
    store.close()
