"""A read-through memo over a VectorStore, for one tuning run: the same searches repeat across the configurations
a tuner tries (late-interaction weights change only the fusion of legs already scored), and a snapshot collection
never changes once built, so an answer read once is exact for the run's whole life."""

from __future__ import annotations

import threading

import numpy as np

from .types import Hit, SparseVector


def _key(value) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, SparseVector):
        return ("sparse", tuple(value.indices), tuple(np.float32(v) for v in value.values))
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.astype(np.float32).tobytes())
    if isinstance(value, dict):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    raise TypeError(f"cannot memoise an argument of type {type(value).__name__}")


def _fresh(hits: list[Hit]) -> list[Hit]:
    # Pruning adds a dropped twin's sources to the kept hit's payload: every caller gets its own lists.
    return [Hit(h.id, h.score, {**h.payload, "sources": list(h.payload.get("sources", []))}) for h in hits]


class MemoStore:
    """Answers `search_*` and `rescore` from memory after the first time; everything else goes to the store."""

    def __init__(self, store) -> None:
        self._store = store
        self._memo: dict = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def _call(self, method: str, args: tuple, kwargs: dict):
        key = (method, _key(args), _key(kwargs))
        with self._lock:
            if key in self._memo:
                self.hits += 1
                return self._memo[key]
            self.misses += 1
        value = getattr(self._store, method)(*args, **kwargs)
        with self._lock:
            self._memo[key] = value
        return value

    def search_dense(self, *args, **kwargs) -> list[Hit]:
        return _fresh(self._call("search_dense", args, kwargs))

    def search_sparse(self, *args, **kwargs) -> list[Hit]:
        return _fresh(self._call("search_sparse", args, kwargs))

    def search_hybrid(self, *args, **kwargs) -> list[Hit]:
        return _fresh(self._call("search_hybrid", args, kwargs))

    def rescore(self, *args, **kwargs) -> dict[str, dict[str, float]]:
        return {i: dict(legs) for i, legs in self._call("rescore", args, kwargs).items()}
