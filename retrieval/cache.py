"""Whole answers cached by (snapshot hash, normalised request).

A snapshot never changes once built, so an answer keyed by its hash is exact for as long as it is kept: no
invalidation, only a bound on memory (size) and on how long an unused entry lingers (TTL).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from cachetools import TTLCache

from retrieval.rewrite import normalize_text


def request_key(snapshot: str, query: str, **request: Any) -> str:
    """The same question asked with different spacing or key order is the same request."""
    body = {"snapshot": snapshot, "query": normalize_text(query), **request}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    def __init__(self, maxsize: int, ttl_s: float) -> None:
        if maxsize < 0 or ttl_s < 0:
            raise ValueError(f"result cache maxsize={maxsize} and ttl_s={ttl_s} must be >= 0")
        self.enabled = maxsize > 0 and ttl_s > 0
        self._cache: TTLCache = TTLCache(maxsize=max(maxsize, 1), ttl=max(ttl_s, 1e-9))
        self._lock = threading.Lock()  # TTLCache is not thread-safe; handlers run on a thread pool
        self.hits = 0
        self.misses = 0

    def get(self, key: str):
        if not self.enabled:
            return None
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: str, value) -> None:
        if self.enabled:
            with self._lock:
                self._cache[key] = value
