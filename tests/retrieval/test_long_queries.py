"""Queries past the embedding model's input: cut into windows that fit (never truncated), embedded, combined; the
recipe says what was done. Hand-checked with the deterministic embedder, and the real tokenizer's counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from encoders.dense import HashEmbedder, SentenceTransformerEmbedder, input_windows
from harness.helpers import ingest, make_runtime, text_doc

SENTENCES = [f"Sentence number {i} talks about topic {i % 7} and nothing else at all." for i in range(40)]


def _words(text: str) -> list[str]:
    return text.split()


def test_a_text_that_fits_is_one_window():
    e = HashEmbedder(max_tokens=256)
    assert input_windows(e, "a short question about leave") == ["a short question about leave"]


def test_a_long_text_is_cut_at_sentence_ends_into_windows_that_fit_and_lose_nothing():
    e = HashEmbedder(max_tokens=40)
    text = " ".join(SENTENCES)
    windows = input_windows(e, text)
    assert len(windows) > 1
    assert all(n <= 40 for n in e.count_tokens(windows))
    assert _words(" ".join(windows)) == _words(text)  # every word, in order
    # Whole sentences: each window starts a sentence.
    assert all(w.startswith("Sentence number") for w in windows)


def test_a_sentence_longer_than_the_input_is_cut_by_words():
    e = HashEmbedder(max_tokens=16)
    text = " ".join(f"w{i}" for i in range(100))  # no sentence end anywhere
    windows = input_windows(e, text)
    assert all(n <= 16 for n in e.count_tokens(windows))
    assert _words(" ".join(windows)) == _words(text)


@pytest.mark.slow
def test_the_real_tokenizer_counts_and_windows_fit_minilm():
    e = SentenceTransformerEmbedder()
    tok = e._load().tokenizer
    text = " ".join(SENTENCES * 3) + " Mitochondrial dysfunction (e.g. in β-cells) precedes apoptosis."
    assert e.count_tokens([text]) == [len(tok(text)["input_ids"])]
    assert e.max_tokens == 256 and e.count_tokens([text])[0] > 256
    windows = input_windows(e, text)
    counts = e.count_tokens(windows)
    assert len(windows) >= 3 and all(n <= 256 for n in counts)
    # Packing adds counts: a window is as long as its sentences counted alone, special tokens paid once.
    assert sum(counts) - 2 * len(windows) == e.count_tokens([text])[0] - 2
    assert re.sub(r"\s+", " ", " ".join(windows)) == re.sub(r"\s+", " ", text)


TEXTS = {
    "volcano": "Volcanoes\n\nLava erupted from the volcano in Iceland. Ash clouds disrupt flights over Europe.",
    "bread": "Baking\n\nBread needs flour, water and yeast. The dough rises for two hours. Ovens bake it at 220 C.",
    "rivers": "Rivers\n\nRivers carry sediment to the sea. Deltas form where rivers slow down. Floods renew soil.",
}


@pytest.mark.parametrize("combine", ["mean", "max-sim"])
def test_a_long_query_is_embedded_in_windows_and_the_recipe_says_so(tmp_path, combine):
    rt = make_runtime(tmp_path, chunk_size=256, long_query_combine=combine)
    rt.embedder.max_tokens = 12
    try:
        ingest(rt, [text_doc(k, v) for k, v in TEXTS.items()])
        query = ("I was reading about lava and volcanoes in Iceland last week. The ash clouds that disrupt flights "
                 "over Europe worried me a lot. Where can I read more about eruptions and ash?")
        embedded = rt.pipeline.embed_query((query,))
        windows = input_windows(rt.embedder, query)
        assert embedded.windows == len(windows) > 1 and embedded.tokens == rt.embedder.count_tokens([query])[0]
        # The dense leg's vector: the windows' unit vectors weighted by their word pieces, made unit again.
        vecs = rt.embedder.embed(windows)
        weights = np.asarray(rt.embedder.count_tokens(windows), dtype=np.float32)
        mean = (vecs * weights[:, None]).sum(axis=0)
        np.testing.assert_allclose(embedded.vector, mean / np.linalg.norm(mean), atol=1e-6)
        np.testing.assert_allclose(embedded.rows, vecs, atol=1e-6)
        answer = rt.searcher.search("default", query, 2)
        assert answer.hits[0].payload["doc_ids"] == ["volcano"]
        assert answer.recipe["first_stage"]["query_windows"] == {"tokens": embedded.tokens,
                                                                "windows": len(windows), "combine": combine}
        assert answer.recipe["first_stage"]["long_queries"] == {"max_tokens": 12, "combine": combine}
        short = rt.searcher.search("default", "lava", 2)
        assert "query_windows" not in short.recipe["first_stage"]
    finally:
        rt.close()


def test_long_queries_get_their_own_late_interaction_weights(tmp_path):
    rt = make_runtime(tmp_path, chunk_size=256, late_long_tokens=20, late_long_weight_dense=1.0,
                      late_long_weight_windows=0.5, rerank="late-interaction")
    try:
        ingest(rt, [text_doc(k, v) for k, v in TEXTS.items()])
        short = rt.searcher.search("default", "lava in iceland", 2)
        assert short.recipe["rerank"]["weights_used"] == "short" and short.recipe["rerank"]["query_tokens"] == 5
        assert short.recipe["rerank"]["long_queries"] == {"over_tokens": 20,
                                                          "weights": {"dense": 1.0, "bm25": 1.0, "windows": 0.5}}
        question = ("I read that lava erupted from a volcano in Iceland and that ash clouds disrupted flights over "
                    "Europe for days; what happened there and why did the ash travel so far?")
        long = rt.searcher.search("default", question, 2)
        assert long.recipe["rerank"]["weights_used"] == "long" and long.recipe["rerank"]["query_tokens"] > 20
        assert long.hits[0].payload["doc_ids"] == ["volcano"]
        # The long weights are what ranked it: the same query with them as the only weights ranks the same.
        same = rt.searcher.search("default", question, 2, late_long_tokens=0, late_dense=1.0, late_windows=0.5)
        assert [h.score for h in same.hits] == pytest.approx([h.score for h in long.hits])
        with pytest.raises(ValueError, match="all 0"):
            rt.pipeline.stages(late_long_dense=0.0, late_long_bm25=0.0, late_long_windows=0.0)
    finally:
        rt.close()
