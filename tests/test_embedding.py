"""Embedding: the packaged MiniLM offline, and the cache that keeps known chunks from the model."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.dense import CachedEmbedding, HashEmbedder, RedisEmbeddingCache, SentenceTransformerEmbedder, SqliteEmbeddingCache
from tests.procs import redis_server


@pytest.fixture(params=["sqlite", "redis"])
def cache(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteEmbeddingCache(tmp_path / "emb.sqlite3")
    else:
        with redis_server(tmp_path / "redis") as url:
            yield RedisEmbeddingCache(url + "/1")


def test_cache_returns_what_was_put_and_never_reembeds(cache):
    embedder = HashEmbedder(dim=16)
    emb = CachedEmbedding(embedder, cache)
    vectors, n = emb.vectors({"h1": "alpha beta", "h2": "gamma delta"})
    assert n == 2 and embedder.texts_embedded == 2
    again, n = emb.vectors({"h1": "alpha beta", "h2": "gamma delta", "h3": "epsilon"})
    assert n == 1 and embedder.texts_embedded == 3
    assert np.array_equal(again["h1"], vectors["h1"]) and again["h1"].dtype == np.float32
    # Another model id never shares vectors.
    other = CachedEmbedding(HashEmbedder(dim=8), cache)
    _, n = other.vectors({"h1": "alpha beta"})
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
