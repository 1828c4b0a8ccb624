"""Queries past the embedding model's input: cut into windows that fit (never truncated), embedded, combined; the
recipe says what was done. Hand-checked with the deterministic embedder, and the real tokenizer's counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from encoders.dense import HashEmbedder, SentenceTransformerEmbedder, bounded_parts, input_windows
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
        assert answer.recipe["first_stage"]["long_queries"] == {"max_tokens": 12, "combine": combine,
                                                                "embed_tokens": 128, "keep": "ends"}
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


class PiecesEmbedder(HashEmbedder):
    """Word pieces of at most three characters (a word of seven is three pieces), as WordPiece splits a long word
    into several: a bound must not cut a word between its pieces. Records what reaches the model."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.batches: list[list[str]] = []

    def token_starts(self, text: str) -> tuple[int, list[int]]:
        return 2, [m.start() + k for m in re.finditer(r"\w+|[^\w\s]", text) for k in range(0, len(m.group()), 3)]

    def count_tokens(self, texts):
        return [len(self.token_starts(t)[1]) + 2 for t in texts]

    def embed(self, texts):
        self.batches.append(list(texts))
        return super().embed(texts)


LONG = ("Employees request parental leave through their manager. " + " ".join(SENTENCES[:20])
        + " Finally, how many weeks of parental leave does the policy grant?")


@pytest.mark.parametrize("keep", ["head", "tail", "ends"])
def test_a_bound_keeps_whole_words_from_the_start_the_end_or_both_up_to_its_word_pieces(keep):
    e = PiecesEmbedder(max_tokens=256)
    whole = e.count_tokens([LONG])[0]
    assert bounded_parts(e, LONG, 0, keep) == [LONG] and bounded_parts(e, LONG, whole, keep) == [LONG]
    words = LONG.split()
    # A bound no whole word fits in cuts inside the word: the bound holds (a part has at least one piece).
    (part,) = bounded_parts(e, LONG, 3, keep)
    assert e.count_tokens([part]) == [3] and (LONG.endswith(part) if keep == "tail" else LONG.startswith(part))
    for bound in (12, 40, 101, whole - 1):
        parts = bounded_parts(e, LONG, bound, keep)
        assert len(parts) == (2 if keep == "ends" else 1)
        # Whole words only (never a word's first pieces without its last), at most the bound's word pieces.
        head = parts[0].split() if keep != "tail" else []
        tail = parts[-1].split() if keep != "head" else []
        assert words[:len(head)] == head and (not tail or words[-len(tail):] == tail)
        assert sum(e.count_tokens(parts)) <= bound  # each part's special tokens counted
        # As many as fit: one more word on any side would pass the bound.
        def pieces(ws): return e.count_tokens([" ".join(ws)])[0] - 2 if ws else 0
        room = bound - 2 * len(parts)
        if keep == "head":
            assert pieces(words[:len(head) + 1]) > room
        elif keep == "tail":
            assert pieces(words[-len(tail) - 1:]) > room
        else:
            assert pieces(words[:len(head) + 1]) > room - room // 2 and pieces(words[-len(tail) - 1:]) > room // 2


def test_the_dense_leg_embeds_only_the_bounded_part_and_keys_its_vector_by_the_bound(tmp_path):
    rt = make_runtime(tmp_path, query_embed_tokens=40)
    try:
        rt.pipeline.embedder = e = PiecesEmbedder(dim=32, max_tokens=30)
        whole = e.count_tokens([LONG])[0]
        head, tail = bounded_parts(e, LONG, 40, "ends")
        got = rt.pipeline.embed_query((LONG,))  # the service's bound, SNAPDEX_QUERY_EMBED_TOKENS
        # Each end is its own window, embedded alone; nothing between them reaches the model.
        assert e.batches == [[head], [tail]]
        counts = e.count_tokens([head, tail])
        assert (got.tokens, got.embedded, got.windows) == (whole, sum(counts), 2)
        vecs = HashEmbedder(dim=32).embed([head, tail])
        want = (vecs * np.asarray(counts, dtype=np.float32)[:, None]).sum(0)
        np.testing.assert_allclose(got.vector, want / np.linalg.norm(want), atol=1e-6)
        # The bound is part of the query vector's key: unbounded is another vector, embedded anew...
        e.batches.clear()
        unbounded = rt.pipeline.embed_query((LONG,), 0)
        assert unbounded.embedded == 0 and len(e.batches) == unbounded.windows > 2
        assert not np.allclose(unbounded.vector, got.vector, atol=1e-3)
        # ...and each is served from the cache after.
        e.batches.clear()
        assert rt.pipeline.embed_query((LONG,), 40) is got and rt.pipeline.embed_query((LONG,), 0) is unbounded
        assert e.batches == []
        # A long query is still long for the late-interaction weights: its whole count decides.
        assert rt.pipeline.defaults.is_long(got.tokens) and not rt.pipeline.defaults.is_long(got.embedded)
    finally:
        rt.close()


def test_the_head_alone_fits_one_window_and_goes_in_the_batch_of_short_queries(tmp_path):
    rt = make_runtime(tmp_path, query_embed_keep="head")
    try:
        rt.pipeline.embedder = e = PiecesEmbedder(dim=32, max_tokens=30)
        (head,) = bounded_parts(e, LONG, 24, "head")
        rt.pipeline.embed_queries([LONG, "parental leave"], 24)
        assert e.batches == [[head, "parental leave"]]
        got = rt.pipeline.embed_query((LONG,), 24)
        assert e.batches == [[head, "parental leave"]]  # nothing more embedded: embed_query finds it
        np.testing.assert_allclose(got.vector, HashEmbedder(dim=32).embed([head])[0], atol=1e-6)
        assert got.embedded == e.count_tokens([head])[0] and got.rows is None
    finally:
        rt.close()


def test_the_bound_is_in_the_recipe_and_each_answer_says_what_was_embedded(tmp_path):
    from eval.store import recipe_key

    rt = make_runtime(tmp_path, chunk_size=256)
    try:
        ingest(rt, [text_doc(k, v) for k, v in TEXTS.items()])
        p = rt.pipeline
        unbounded = p.recipe(p.stages(query_embed_tokens=0))
        assert unbounded["first_stage"]["long_queries"] == {"max_tokens": 256, "combine": "mean"}
        assert p.recipe()["first_stage"]["long_queries"]["embed_tokens"] == 128  # the service's default
        bounded = p.recipe(p.stages(query_embed_tokens=24))
        assert bounded["first_stage"]["long_queries"] == {"max_tokens": 256, "combine": "mean", "embed_tokens": 24,
                                                          "keep": "ends"}
        # Evaluation runs are keyed by the recipe: a run under one bound is never reused for another.
        assert len({recipe_key(p.recipe(p.stages(query_embed_tokens=b))) for b in (0, 24, 25)}) == 3
        query = ("I was reading about volcanoes last week and many other things that have nothing to do with them, "
                 "the weather, the news, my garden and the price of bread in town. Where did lava erupt and ash "
                 "clouds disrupt flights over Europe?")
        answer = rt.searcher.search("default", query, 2, query_embed_tokens=24)
        notes = answer.recipe["first_stage"]["query_windows"]
        assert notes["tokens"] > 24 and 0 < notes["embedded"] <= 24 and notes["keep"] == "ends"
        assert answer.hits[0].payload["doc_ids"] == ["volcano"]
        whole = rt.searcher.search("default", query, 2)
        assert "query_windows" not in whole.recipe["first_stage"]  # it fits the model's input: embedded whole
        with pytest.raises(ValueError, match=r"query_embed_tokens=-1 is out of range \[0, 100000\]"):
            p.stages(query_embed_tokens=-1)
    finally:
        rt.close()
