"""Backends under test and a small deterministic data set."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient

from store import ClientStore, EdgeStore, Point, SparseVector

DIM = 16
N = 200
TENANTS = ("acme", "globex", "initech")
COMMON_TERM = 0  # in every document
RARE_TERM = 1000  # only in document 0


def make_points(n: int = N, dim: int = DIM, seed: int = 7) -> list[Point]:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, dim)).astype(np.float32)
    # Unit vectors: cosine engines store them normalized, so they round-trip unchanged.
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    points = []
    for i in range(n):
        others = rng.choice(np.arange(1, 60), size=int(rng.integers(2, 6)), replace=False)
        terms = sorted({COMMON_TERM, *others.tolist()})
        # Random weights keep sparse scores free of ties, which would make the
        # prefetch ranks (and so RRF) depend on engine tie-breaking.
        weights = rng.uniform(0.5, 3.0, size=len(terms)).round(4).tolist()
        if i == 0:
            terms, weights = terms + [RARE_TERM], weights + [1.0]
        if i == 1:
            weights[0] = 10.0  # the largest raw weight of the common term
        points.append(
            Point(
                id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                dense=dense[i],
                sparse=SparseVector(terms, weights),
                payload={
                    "n": i,
                    "tenant": TENANTS[i % 3],
                    "doc_ids": [f"d{i % 7}", f"d{(i + 3) % 7}"],
                    "metadata": {"lang": "de" if i % 4 == 0 else "en", "year": 2000 + i % 25},
                    "flag": i % 2 == 0,
                    # Access tokens (ingest/access.py): tenant-wide, a user, groups, or nobody at all.
                    "access": [["*"], [f"u:user{i % 5}"], [f"g:group{i % 3}", f"u:user{i % 4}"], []][i % 4],
                },
            )
        )
    return points


@pytest.fixture(scope="session")
def points() -> list[Point]:
    return make_points()


BACKENDS = ["edge", "local", pytest.param("server", marks=pytest.mark.docker)]


def open_backend(kind: str, request, tmp_path):
    if kind == "edge":
        return EdgeStore(tmp_path / f"edge-{uuid.uuid4().hex[:8]}")
    if kind == "local":
        return ClientStore(QdrantClient(location=":memory:"))
    return ClientStore(request.getfixturevalue("qdrant_server").get_client())


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = open_backend(request.param, request, tmp_path)
    yield s
    if request.param == "server":  # one server serves the whole session
        for name in s.list_collections():
            s.delete_collection(name)
    s.close()


@pytest.fixture
def other(request, tmp_path, store):
    """The reference backend `store` is compared with: edge against local mode, the rest against edge."""
    kind = "local" if isinstance(store, EdgeStore) else "edge"
    s = open_backend(kind, request, tmp_path)
    yield s
    s.close()


def load(store, points, name: str = "docs") -> str:
    store.create_collection(name, DIM, keyword_indexes=["tenant", "doc_ids", "metadata.lang", "access"])
    store.upsert(name, points)
    return name
