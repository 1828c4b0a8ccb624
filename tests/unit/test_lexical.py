import math
from collections import Counter

import pytest
from rank_bm25 import BM25Okapi

from encoders.lexical import BM25Params, average_length, document_vector, query_vector, term_counts, term_id, tokenize


def test_tokenize_lowercases_drops_stopwords_and_stems():
    assert tokenize("The Running dogs ran QUICKLY!") == ["run", "dog", "ran", "quick"]


def test_term_ids_are_stable_hashes():
    # Known value: ids must never change between processes or releases without a new tokenizer version.
    assert term_id("dog") == term_id("dog")
    assert term_id("dog") != term_id("dogs")
    assert 0 <= term_id("anything") < 2**32


def test_document_vector_is_bm25_saturation():
    counts = {"cat": 3, "dog": 1}
    p = BM25Params(k1=1.2, b=0.75)
    vec = document_vector(counts, avgdl=2.0, params=p)
    dl = 4
    norm = 1.2 * (1 - 0.75 + 0.75 * dl / 2.0)
    expected = {term_id("cat"): 3 * 2.2 / (3 + norm), term_id("dog"): 1 * 2.2 / (1 + norm)}
    assert dict(zip(vec.indices, vec.values)) == expected
    assert vec.indices == sorted(vec.indices)


def test_scores_match_rank_bm25_reference():
    docs = ["cats chase mice", "dogs chase cats and cats run", "mice eat cheese", "a dog sleeps all day long"]
    counts = [term_counts(d) for d in docs]
    avgdl = average_length(counts)
    p = BM25Params()
    vectors = [dict(zip(v.indices, v.values)) for v in (document_vector(c, avgdl, p) for c in counts)]
    n = len(docs)
    q = query_vector("cat chasing")
    # Qdrant's IDF modifier: ln(1 + (N - df + 0.5) / (df + 0.5)).
    df = {t: sum(t in v for v in vectors) for t in q.indices}
    ours = [sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * v.get(t, 0.0) for t in q.indices) for v in vectors]

    ref = BM25Okapi([tokenize(d) for d in docs], k1=p.k1, b=p.b)
    # rank-bm25 uses the same saturation; give it the same (Lucene) IDF so the two formulas meet exactly.
    ref_df = Counter(w for d in ref.doc_freqs for w in d)
    ref.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in ref_df.items()}
    theirs = list(ref.get_scores(tokenize("cat chasing")))
    assert ours == pytest.approx(theirs, abs=1e-12)
    # Both documents with "cat" and "chase" score; the one without either does not.
    assert ours[0] > 0 and ours[1] > 0 and ours[2] == 0 and ours[3] == 0


def test_query_vector_weights_each_term_by_its_count_in_the_query():
    # BM25 sums over query tokens: "cats chase cats" counts "cat" twice. Feedback terms never lower a query term.
    q = query_vector("Cats chase cats; the dog", extra_terms={"dog": 0.3, "mous": 0.3})
    assert dict(zip(q.indices, q.values)) == {term_id("cat"): 2.0, term_id("chase"): 1.0, term_id("dog"): 1.0,
                                              term_id("mous"): 0.3}


def test_a_document_share_blends_the_chunks_weights_with_its_documents():
    chunk, whole = {"cat": 2}, {"cat": 3, "dog": 4}
    alone = BM25Params(k1=1.2, b=0.75)
    blended = BM25Params(k1=1.2, b=0.75, document=0.25)

    def weights(p, *doc):
        v = document_vector(chunk, 2.0, p, *doc)
        return dict(zip(v.indices, v.values))

    own, doc = weights(alone), dict(zip(*[(v := document_vector(whole, 5.0, alone)).indices, v.values]))
    mixed = weights(blended, whole, 5.0)
    assert mixed[term_id("cat")] == pytest.approx(0.75 * own[term_id("cat")] + 0.25 * doc[term_id("cat")])
    assert mixed[term_id("dog")] == pytest.approx(0.25 * doc[term_id("dog")])  # a term only its document holds
    assert weights(alone, whole, 5.0) == own  # no share: the chunk alone, whatever document is given
    with pytest.raises(ValueError, match="document=1.5"):
        BM25Params(document=1.5)
