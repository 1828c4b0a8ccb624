"""Embedding: the packaged MiniLM offline, and the cache that keeps known chunks from the model."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.dense import HashEmbedder, RedisEmbeddingCache, SentenceTransformerEmbedder, SqliteEmbeddingCache
from encoders.embedding import EmbeddingService
from ingest.normalize import content_hash
from ingest.windows import WindowConfig, chunk_windows, embed_chunks
from harness.procs import redis_server


@pytest.fixture(params=["sqlite", "redis"])
def cache(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteEmbeddingCache(tmp_path / "emb.sqlite3")
    else:
        with redis_server(tmp_path / "redis") as url:
            yield RedisEmbeddingCache(url + "/1")


def test_cache_returns_what_was_put_and_never_reembeds(cache):
    embedder = HashEmbedder(dim=16)
    emb = EmbeddingService(embedder, cache)
    vectors, n = emb.texts({"h1": "alpha beta", "h2": "gamma delta"})
    assert n == 2 and embedder.texts_embedded == 2
    again, n = emb.texts({"h1": "alpha beta", "h2": "gamma delta", "h3": "epsilon"})
    assert n == 1 and embedder.texts_embedded == 3
    assert np.array_equal(again["h1"], vectors["h1"]) and again["h1"].dtype == np.float32
    # Another model id never shares vectors.
    other = EmbeddingService(HashEmbedder(dim=8), cache)
    _, n = other.texts({"h1": "alpha beta"})
    assert n == 1


@pytest.mark.slow
def test_packaged_minilm_loads_offline_and_embeds():
    embedder = SentenceTransformerEmbedder(batch_size=8)
    assert embedder.model_id.startswith(embedder.folder.name + "@")  # name plus a digest of the weights
    vecs = embedder.embed(["Aspirin reduces the risk of heart attack.", "Aspirin lowers heart attack risk.",
                           "The train leaves at noon."])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.3
    assert np.allclose(embedder.embed(["The train leaves at noon."])[0], vecs[2], atol=1e-5)
    assert embedder.dim == 384


def test_model_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        SentenceTransformerEmbedder(tmp_path)


CHUNK = ("Vitamin D and bones\n\nVitamin D deficiency is common in winter. Bone density fell by 3% in the "
         "group. Supplements restored it within a year. The effect lasted two years after treatment ended.")


def test_late_windows_are_pooled_from_one_pass_and_cached(cache):
    embedder = HashEmbedder(dim=32)
    emb = EmbeddingService(embedder, cache)
    config = WindowConfig()
    got = embed_chunks(emb, {"c1": (CHUNK, "Vitamin D and bones"), "c2": ("Too short.", None)}, config)
    assert got.embedded == 2 and embedder.texts_embedded == 2  # one pass per chunk, none per window
    plan = chunk_windows(CHUNK, "Vitamin D and bones", config)
    assert len(plan) == 3 and got.windows["c1"].shape == (3, 32)
    for w, row in zip(plan, got.windows["c1"]):  # each row is the fake's vector of exactly its span
        assert np.array_equal(row, embedder._vectors([CHUNK[w.start:w.end]])[0])
    assert np.array_equal(got.vectors["c1"], embedder._vectors([CHUNK])[0])
    # Read back (the snapshot build): nothing reaches the model, the same vectors come out.
    again = embed_chunks(emb, {"c1": (CHUNK, "Vitamin D and bones")}, config)
    assert again.embedded == 0 and embedder.texts_embedded == 2
    assert np.array_equal(again.windows["c1"], got.windows["c1"]) and np.array_equal(again.vectors["c1"], got.vectors["c1"])
    # Another title leaves another title line out: its own entry, not the first title's windows.
    assert embed_chunks(emb, {"c1": (CHUNK, "Bones")}, config).embedded == 1
    # The standalone method embeds each titled window alone.
    alone = embed_chunks(emb, {"c1": (CHUNK, "Vitamin D and bones")}, WindowConfig(method="standalone"))
    assert np.array_equal(alone.windows["c1"], embedder._vectors([w.text for w in plan]))


def test_late_windows_past_the_model_input_are_embedded_alone(cache):
    embedder = HashEmbedder(dim=32, max_chars=120)  # the last windows end past the fake's "input length"
    emb = EmbeddingService(embedder, cache)
    got = embed_chunks(emb, {"c1": (CHUNK, "Vitamin D and bones")}, WindowConfig())
    plan = chunk_windows(CHUNK, "Vitamin D and bones", WindowConfig())
    assert [w.end <= 120 for w in plan] == [True, False, False]
    assert np.array_equal(got.windows["c1"][0], embedder._vectors([CHUNK[plan[0].start:plan[0].end]])[0])
    assert np.array_equal(got.windows["c1"][1:], embedder._vectors([w.text for w in plan[1:]]))  # titled, alone
    assert embedder.texts_embedded == 1 + 2
    assert set(cache.get_many(embedder.model_id, [content_hash(w.text) for w in plan[1:]])) == \
        {content_hash(w.text) for w in plan[1:]}


@pytest.mark.slow
def test_minilm_late_pooling_matches_its_token_embeddings():
    embedder = SentenceTransformerEmbedder(batch_size=4)
    long = CHUNK + " " + " ".join(f"Sentence number {i} adds more words to the abstract." for i in range(40))
    texts = [CHUNK, "Aspirin reduces the risk of heart attack.", long]
    plans = [chunk_windows(t, "Vitamin D and bones", WindowConfig()) for t in texts]
    vectors, pooled = embedder.embed_spans(texts, [[(w.start, w.end) for w in p] for p in plans])
    # The chunk vector is the one `embed` gives: late windows cost no second chunk pass.
    assert np.allclose(vectors, embedder.embed(texts), atol=1e-5)
    # A window is the normalised mean of its tokens' embeddings from that pass, found by offsets.
    model = embedder._load()
    tokens = model.encode([CHUNK], output_value="token_embeddings", convert_to_numpy=False)[0].numpy()
    enc = model.tokenizer(CHUNK, return_offsets_mapping=True)
    for w, got in zip(plans[0], pooled[0]):
        idx = [i for i, (a, z) in enumerate(enc["offset_mapping"]) if z > a and a >= w.start and z <= w.end]
        want = tokens[idx].mean(0)
        assert np.allclose(got, want / np.linalg.norm(want), atol=1e-5)
    # A window the 256-token input did not reach has no pooled vector: the caller embeds it alone.
    reach = max(z for _, z in model.tokenizer(long, truncation=True, max_length=model.max_seq_length,
                                              return_offsets_mapping=True)["offset_mapping"])
    assert [v is None for v in pooled[2]] == [w.end > reach for w in plans[2]]
    assert pooled[2][0] is not None and pooled[2][-1] is None
