"""The query path's caches hold at most their bytes (entries measured when stored), and their entry counts."""

from __future__ import annotations

import time

import numpy as np

from retrieval.cache import BoundedCache, ResultCache, measured_size


def test_measured_size_counts_what_an_entry_holds():
    text = "x" * 100_000
    assert measured_size(text) >= 100_000
    vec = np.zeros(384, dtype=np.float32)
    assert measured_size(vec) >= vec.nbytes
    assert measured_size({"hits": [{"text": text}, {"text": text}]}) < 2 * measured_size(text)  # shared once
    assert measured_size({"a": [text, "y" * 50_000]}) >= 150_000


def test_a_cache_never_holds_more_than_its_bytes():
    cache = BoundedCache(max_bytes=64 * 1024)
    for i in range(500):
        cache.put(("model", (f"query {i}",)), np.random.rand(384).astype(np.float32))
        assert cache.bytes <= 64 * 1024
    assert 0 < len(cache) < 500  # the least recently used went first
    assert cache.get(("model", ("query 499",))) is not None and cache.get(("model", ("query 0",))) is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.put("huge", "z" * 100_000)  # larger than the whole cache: not kept, nothing else evicted for it
    assert cache.get("huge") is None and cache.bytes <= 64 * 1024


def test_result_cache_bounds_entries_bytes_and_age():
    answers = ResultCache(maxsize=3, ttl_s=0.2, max_bytes=1 << 20)
    for i in range(5):
        answers.put(f"k{i}", {"hits": [f"answer {i}"]})
    assert len(answers) == 3 and answers.get("k0") is None and answers.get("k4") is not None
    time.sleep(0.3)
    assert answers.get("k4") is None  # expired
    small = ResultCache(maxsize=1000, ttl_s=600, max_bytes=20_000)
    for i in range(100):
        small.put(f"k{i}", {"text": "t" * 1000})
    assert small.bytes <= 20_000 and len(small) < 100
    off = ResultCache(maxsize=0, ttl_s=600)
    off.put("k", "v")
    assert not off.enabled and off.get("k") is None
