"""Caches of the query path, bounded in bytes: whole answers by (snapshot hash, normalised request), and query
vectors by (model, text).

A snapshot never changes once built, so an answer keyed by its hash is exact for as long as it is kept: no
invalidation, only bounds on memory (bytes and entries) and on how long an unused entry lingers (TTL). An entry's
size is measured when it is stored (`measured_size`: sys.getsizeof over the objects it holds), so the bound holds
however long the texts in an answer are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
from typing import Any

import numpy as np
from cachetools import LRUCache, TTLCache

from retrieval.rewrite import normalize_text


def request_key(snapshot: str, query: str, **request: Any) -> str:
    """The same question asked with different spacing or key order is the same request."""
    body = {"snapshot": snapshot, "query": normalize_text(query), **request}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def measured_size(obj: Any) -> int:
    """Bytes an object holds: sys.getsizeof of it and of everything it refers to (containers, dataclasses,
    numpy arrays' buffers), each object counted once."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, (str, bytes, int, float, bool, type(None))):
            continue
        if isinstance(o, np.ndarray):
            total += 0 if o.flags.owndata else o.nbytes  # getsizeof counts an owned buffer already
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif dataclasses.is_dataclass(o):
            stack.extend(getattr(o, f.name) for f in dataclasses.fields(o))
    return total


class _Sized:
    __slots__ = ("value", "size")

    def __init__(self, value: Any, size: int) -> None:
        self.value, self.size = value, size


class BoundedCache:
    """A thread-safe LRU (TTL when `ttl_s` is set) cache that holds at most `max_bytes` (key and value measured)
    and `max_entries` entries; either bound at 0 turns it off. Counts hits and misses."""

    def __init__(self, max_bytes: int, max_entries: int | None = None, ttl_s: float | None = None) -> None:
        if max_bytes < 0 or (max_entries or 0) < 0 or (ttl_s or 0) < 0:
            raise ValueError(f"cache bounds max_bytes={max_bytes}, max_entries={max_entries} and ttl_s={ttl_s} "
                             "must be >= 0")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.enabled = max_bytes > 0 and max_entries != 0 and ttl_s != 0
        size = lambda e: e.size  # noqa: E731
        self._cache = (TTLCache(max(max_bytes, 1), ttl=ttl_s, getsizeof=size) if ttl_s is not None
                       else LRUCache(max(max_bytes, 1), getsizeof=size))
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; handlers run on a thread pool
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        with self._lock:
            return int(self._cache.currsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def get(self, key: Any):
        if not self.enabled:
            return None
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry.value

    def put(self, key: Any, value: Any) -> None:
        if not self.enabled:
            return
        size = measured_size(key) + measured_size(value)
        if size > self.max_bytes:
            return  # larger than the whole cache: cachetools would refuse it with an error
        with self._lock:
            self._cache[key] = _Sized(value, size)
            while self.max_entries is not None and len(self._cache) > self.max_entries:
                self._cache.popitem()


class ResultCache(BoundedCache):
    """Whole answers; `maxsize` entries (0: off), `max_bytes` of memory, `ttl_s` for an unused one."""

    def __init__(self, maxsize: int, ttl_s: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        if maxsize < 0 or ttl_s < 0:
            raise ValueError(f"result cache maxsize={maxsize} and ttl_s={ttl_s} must be >= 0")
        super().__init__(max_bytes, maxsize, max(ttl_s, 1e-9) if ttl_s > 0 else 0)
