"""The Embedder contract, run against every implementation: sentence-transformers on torch, ONNX Runtime fp32 and
int8 (exported from the packaged weights into the shared test models folder), and the deterministic hash fake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders.dense import HashEmbedder
from encoders.embedding import BACKENDS, FAKE_BACKEND, open_embedder

REPO = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ["SNAPDEX_MODELS_DIR"])  # set by conftest: one export per checkout

# How close a batched text's vector is to the same text embedded alone. int8 activations are quantised with one
# range per batch tensor, so the other texts of a batch move a vector a little: int8 agrees to a cosine.
BATCH_COSINE = {"hash": 1 - 1e-6, "torch": 1 - 1e-5, "onnx": 1 - 1e-5, "onnx-int8": 0.99}

TEXTS = ["Vitamin D deficiency is common in winter.", "", "Aspirin lowers the risk of heart attack.",
         "The train leaves at noon. " * 12, "Ünïcödé, punctuation; and (brackets) [1]."]
CHUNK = ("Vitamin D and bones\n\nVitamin D deficiency is common in winter. Bone density fell by 3% in the "
         "group. Supplements restored it within a year.")


def _open(backend: str):
    if backend == "hash":
        return HashEmbedder(dim=32, max_chars=400)
    return open_embedder(backend, None, MODELS, batch_size=4)


@pytest.fixture(scope="module", params=[pytest.param(b, marks=[] if b == "hash" else [pytest.mark.slow])
                                        for b in ("hash", *BACKENDS)])
def embedder(request):
    return request.param, _open(request.param)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def long_text(embedder) -> str:
    """A text past the model's input, by its own count."""
    sentence = "Sentence number {} adds more words about cells, genes and the proteins they make."
    text = CHUNK
    i = 0
    while embedder.count_tokens([text])[0] <= embedder.max_tokens * 1.5:
        text += " " + sentence.format(i)
        i += 1
    return text


def test_vectors_are_unit_float32_rows(embedder):
    _, e = embedder
    vecs = e.embed(TEXTS)
    assert vecs.shape == (len(TEXTS), e.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert e.embed([]).shape == (0, e.dim)


def test_a_batch_gives_what_each_text_alone_gives(embedder):
    name, e = embedder
    batched = e.embed(TEXTS)
    alone = np.stack([e.embed([t])[0] for t in TEXTS])
    assert cosines(batched, alone).min() >= BATCH_COSINE[name]


def test_embed_spans_gives_embeds_vectors_and_pools_spans_of_one_pass(embedder):
    name, e = embedder
    spans = [[(0, 19), (21, 62)], [], [(0, 7)], [(0, 26), (26, 52)], [(0, 8)]]
    texts = [CHUNK, *TEXTS[1:]]
    vectors, pooled = e.embed_spans(texts, spans)
    assert cosines(vectors, e.embed(texts)).min() >= BATCH_COSINE[name]  # no second pass for the text's vector
    assert [len(p) for p in pooled] == [len(s) for s in spans]
    for row in (p for ps in pooled for p in ps):
        assert row is not None and row.dtype == np.float32 and abs(float(np.linalg.norm(row)) - 1) < 1e-5
    # A span's vector reads its context: the same words pooled from two texts differ, unlike the words alone.
    if name != "hash":
        _, (again,) = e.embed_spans(["Vitamin D matters. " + CHUNK[21:62]], [[(19, 19 + 41)]])
        assert float(pooled[0][1] @ again[0]) < 0.9999


def test_spans_past_the_models_input_are_none(embedder):
    _, e = embedder
    text = long_text(e)
    assert e.count_tokens([text])[0] > e.max_tokens
    end = len(text)
    _, (pooled,) = e.embed_spans([text], [[(0, 19), (end - 40, end)]])
    assert pooled[0] is not None and pooled[1] is None


def test_token_counts(embedder):
    name, e = embedder
    counts = e.count_tokens(["", "word", "two words", long_text(e)])
    assert counts[0] <= counts[1] <= counts[2] and counts[3] > e.max_tokens  # before truncation
    assert isinstance(e.max_tokens, int) and e.max_tokens > 0
    if name != "hash":
        assert counts[:3] == [2, 3, 4]  # [CLS] and [SEP] included: what the model's input holds


def test_token_starts_give_every_prefix_its_count(embedder):
    """What a prefix counts, read from one pass (the context's cut relies on it): at every word's end, the special
    tokens plus the tokens that start before it are what counting the prefix alone gives."""
    import re

    _, e = embedder
    text = " ".join(TEXTS) + " " + long_text(e)
    specials, starts = e.token_starts(text)
    assert starts == sorted(starts) and specials == e.count_tokens([""])[0]
    assert specials + len(starts) == e.count_tokens([text])[0]
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    prefixes = [text[:end] for end in ends]
    assert [specials + sum(1 for s in starts if s < end) for end in ends] == e.count_tokens(prefixes)


@pytest.mark.slow
def test_backends_agree_on_tokens_and_vectors():
    torch_e, onnx_e, int8_e = (_open(b) for b in BACKENDS)
    texts = [*TEXTS, long_text(torch_e)]
    counts = torch_e.count_tokens(texts)
    assert onnx_e.count_tokens(texts) == counts == int8_e.count_tokens(texts)
    assert onnx_e.max_tokens == torch_e.max_tokens == int8_e.max_tokens == 256
    want = torch_e.embed(texts)
    assert cosines(onnx_e.embed(texts), want).min() > 0.99999  # fp32: the same model
    assert cosines(int8_e.embed(texts), want).min() > 0.95     # int8: close (quality: README, "Embedder backends")
    spans = [[(0, 19), (21, 62)]]
    _, (t,) = torch_e.embed_spans([CHUNK], spans)
    _, (o,) = onnx_e.embed_spans([CHUNK], spans)
    assert all(float(a @ b) > 0.99999 for a, b in zip(t, o))  # late windows: same token embeddings, same offsets
    # Each backend and quantisation is its own model id: snapshots hash differently, caches never mix.
    assert len({torch_e.model_id, onnx_e.model_id, int8_e.model_id}) == 3
    assert all(m.startswith(torch_e.model_id) for m in (onnx_e.model_id, int8_e.model_id))


@pytest.mark.slow
def test_onnx_serving_never_imports_torch():
    """The export (which needs torch) runs in a child process; serving loads onnxruntime and tokenizers only."""
    _open("onnx-int8").embed(["export it first"])
    code = ("import sys; from pathlib import Path; from encoders.embedding import open_embedder; "
            f"e = open_embedder('onnx-int8', None, Path({str(MODELS)!r})); e.embed(['x']); "
            "e.embed_spans(['a b. c d.'], [[(0, 4)]]); e.count_tokens(['x']); "
            "bad = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_hash_backend_serves_the_fake_under_its_own_model_id(tmp_path):
    """SNAPDEX_EMBEDDER_BACKEND=hash (tests, offline demos): the deterministic fake, no model files read."""
    from snapdex.settings import Settings

    assert Settings(data_dir=tmp_path, embedder_backend=FAKE_BACKEND).embedder_backend == "hash"
    e = open_embedder(FAKE_BACKEND, tmp_path / "no-model-here", tmp_path)
    assert isinstance(e, HashEmbedder) and e.dim == 384 and e.model_id == "hash-embedder-384"
    assert np.array_equal(e.embed(TEXTS), HashEmbedder(dim=384).embed(TEXTS))


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="onnx-int8"):
        open_embedder("tensorrt", None, tmp_path)
