"""Vector store facade: one protocol, an in-process backend (qdrant-edge) and a server one (qdrant-client)."""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from .base import DENSE, SPARSE, StoreError, StoreUnavailable, VectorStore
from .edge import EdgeStore

if TYPE_CHECKING:
    from .client import ClientStore
from .types import Hit, Point, Record, SparseVector

BACKENDS = ("edge", "qdrant")

__all__ = [
    "BACKENDS",
    "DENSE",
    "SPARSE",
    "ClientStore",
    "EdgeStore",
    "Hit",
    "Point",
    "Record",
    "SparseVector",
    "StoreError",
    "StoreUnavailable",
    "VectorStore",
    "open_store",
]


def open_store(
    backend: str,
    *,
    path: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    shards: int | None = None,
    replicas: int | None = None,
    timeout: int = 30,
) -> VectorStore:
    """"edge" needs `path` (a directory); "qdrant" needs `url` of a Qdrant server."""
    if backend == "edge":
        if path is None:
            raise ValueError("the 'edge' store backend needs a path")
        return EdgeStore(Path(path))
    if backend == "qdrant":
        if not url:
            raise ValueError("the 'qdrant' store backend needs a url")
        from .client import ClientStore

        return ClientStore.from_url(url, api_key=api_key, timeout=timeout, shards=shards, replicas=replicas)
    raise ValueError(f"unknown store backend {backend!r}; expected one of {', '.join(map(repr, BACKENDS))}")


def __getattr__(name: str):
    # qdrant-client (with grpc) costs ~80 MB of RSS: a process on the embedded backend never imports it.
    if name == "ClientStore":
        from .client import ClientStore

        return ClientStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
