"""Input checks and result ordering shared by the backends."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from options import DENSE_INDEX_MODES, STORE_FUSIONS as FUSIONS, VECTOR_DATATYPES

from .base import DENSE, SPARSE, WINDOWS
from .types import Hit, SparseVector

UPSERT_BATCH = 256
# Extra hits fetched so a group of tied scores straddling `limit` is seen whole.
TIE_SLACK = 8

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# A UUID already in the canonical form str(uuid.UUID(...)) gives: how the engines hand ids back, so ids read from one
# search and passed to the next (rescoring, payloads) skip the parse, which cost ~2 ms a deep search.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_name(name: str) -> str:
    # Edge collections are directories, so the name must be a safe file name.
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid collection name {name!r}; use letters, digits, '_', '-', '.' (max 128)")
    return name


def check_datatype(datatype: str) -> str:
    if datatype not in VECTOR_DATATYPES:
        raise ValueError(f"vector datatype {datatype!r} is not one of {VECTOR_DATATYPES}")
    return datatype


def check_id(point_id: str) -> str:
    if type(point_id) is str and _CANONICAL_UUID.fullmatch(point_id):
        return point_id
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ValueError(f"point id must be a UUID string, got {point_id!r}") from None


def check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise ValueError(f"ids must be a sequence of UUID strings, got the string {ids!r}")
    return [check_id(i) for i in ids]


def check_positive(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def check_fusion(fusion: str, rrf_k: int) -> None:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {', '.join(map(repr, FUSIONS))}")
    check_positive("rrf_k", rrf_k)


def batches(items: Sequence, size: int = UPSERT_BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def top_hits(fetch: Callable[[int], list[Hit]], limit: int) -> list[Hit]:
    """The best `limit` hits ordered by (-score, id), independent of how the engine breaks ties.

    `fetch(n)` asks the engine for n hits. If the scores at the cut are still tied we
    fetch more, so the same tied group always contributes the same ids.
    """
    check_positive("limit", limit)
    n = limit + TIE_SLACK
    while True:
        hits = sorted(fetch(n), key=lambda h: (-h.score, h.id))
        if len(hits) < n or hits[limit - 1].score != hits[-1].score:
            return hits[:limit]
        n *= 2


def rescore_legs(dense, sparse: SparseVector | None, windows) -> list[tuple[str, str, object]]:
    """(leg, named vector, query vector) for each leg `rescore` was asked for; a sparse query with no terms
    scores nothing, so it is no leg."""
    legs = []
    if dense is not None:
        legs.append(("dense", DENSE, dense))
    if sparse is not None and sparse.indices:
        legs.append(("bm25", SPARSE, sparse))
    if windows is not None:
        legs.append(("windows", WINDOWS, windows))
    return legs


def query_rows(vector) -> np.ndarray:
    """A max-sim query as rows: one vector is a multivector of one; a matrix (a long query embedded in windows)
    scores each point by the sum over its rows of the best match among the point's window vectors."""
    rows = np.asarray(vector, dtype=np.float32)
    return rows[None, :] if rows.ndim == 1 else rows


@dataclass(frozen=True)
class DenseIndex:
    """The HNSW graph of a collection's dense vectors: `m` edges a node, `ef_construct` candidates while building,
    `ef` candidates a query explores (Qdrant explores at least the `limit` asked for). Measured by
    bench/million_bench.py at 200k chunks (README, "A million chunks"): m 32, ef_construct 200 with ef 128 found
    0.992 of the exact scan's top 10 at p95 1.9 ms; Qdrant's default graph (16, 100) needed ef 256 for 0.989 (0.979
    at ef 128) at the same p95 and half the graph build time. At 1M the same ef 128 found only 0.956, ef 384 0.985
    at p95 11.2 ms against 10.2 (quiet): ef 384. ef is in canonical(): raising it rebuilt each graph snapshot once."""
    m: int = 32
    ef_construct: int = 200
    ef: int = 384

    def __post_init__(self) -> None:
        for what in ("m", "ef_construct", "ef"):
            check_positive(f"dense index {what}", getattr(self, what))

    def canonical(self) -> dict:
        return {"index": "hnsw", "m": self.m, "ef_construct": self.ef_construct, "ef": self.ef}

    @classmethod
    def from_canonical(cls, fields: dict | None) -> DenseIndex | None:
        """What a store recorded beside a collection (canonical()), or None where it recorded nothing."""
        return None if fields is None else cls(fields["m"], fields["ef_construct"], fields["ef"])


def dense_index_for(mode: str, chunks: int, threshold: int, hnsw: DenseIndex = DenseIndex()) -> DenseIndex | None:
    """The graph a snapshot of `chunks` chunks is built with, or None for the exact scan."""
    if mode not in DENSE_INDEX_MODES:
        raise ValueError(f"dense index {mode!r} is not one of {DENSE_INDEX_MODES}")
    if mode == "auto":
        return hnsw if chunks >= check_positive("dense index threshold", threshold) else None
    return hnsw if mode == "hnsw" else None
