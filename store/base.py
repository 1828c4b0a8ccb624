"""The VectorStore protocol every backend implements, its constants and errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol, Sequence, runtime_checkable

from errors import Unavailable

from .filters import Filters
from .types import Hit, Point, Record, SparseVector

if TYPE_CHECKING:
    from .common import DenseIndex  # common imports this module's constants

DENSE = "dense"
SPARSE = "bm25"
# Multivector (max-sim) of sentence windows: read only to rescore candidates, so it has no HNSW graph.
WINDOWS = "windows"


class StoreError(Exception):
    """An engine operation failed; the engine's exception is the __cause__."""


class StoreUnavailable(StoreError, Unavailable):
    """The server backend could not be reached (or is overloaded); worth retrying."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        return "vector store unavailable"  # the engine's own message (addresses, its errors) stays in the log


@runtime_checkable
class VectorStore(Protocol):
    """Every `filters` is a dict of payload paths or a Filter tree (store/filters.py), applied inside the engine's
    request: a search returns the best `limit` of the points that match, never fewer for points filtered later."""

    def create_collection(
        self, name: str, dense_dim: int, keyword_indexes: Sequence[str] = (), windows: bool = False,
        datatype: str = "float32", dense_index: DenseIndex | None = None,
    ) -> None:
        """`datatype`: how dense and window vectors are stored, one of VECTOR_DATATYPES. `dense_index`: the HNSW
        graph dense searches walk (built by the last `flush` of a build), or None: they scan every vector."""
        ...

    def has_collection(self, name: str) -> bool: ...

    def list_collections(self) -> list[str]: ...

    def delete_collection(self, name: str) -> None: ...

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Insert or replace points. Durable once `flush` (or `close`) returns: the embedded engine keeps no
        write-ahead log, a server does."""
        ...

    def flush(self, name: str) -> None:
        """Make every write to the collection so far durable."""
        ...

    def delete_points(self, name: str, ids: Sequence[str]) -> None: ...

    def set_payloads(self, name: str, payloads: Mapping[str, dict]) -> None:
        """{id: fields}: each point's payload takes the given top-level fields; its other fields and its vectors
        stay as they are. Ids not in the collection are left out (nothing is created)."""
        ...

    def count(self, name: str, filters: Filters = None) -> int: ...

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool | Sequence[str] = False,
                 with_payload: bool = True) -> list[Record]:
        """The points of `ids` that exist, in request order; `with_vectors` is all of them or the named ones."""
        ...

    def scroll(
        self,
        name: str,
        filters: Filters = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Record], str | None]: ...

    def search_dense(self, name: str, vector, limit: int, filters: Filters = None,
                     with_payload: bool = True) -> list[Hit]:
        """The `limit` nearest points by the dense vector, ordered by (-score, id). `with_payload=False`: each hit's
        payload is {} (a first stage that fuses many candidates reads the payloads of the few it keeps: the engine
        takes most of a search's time handing payloads over)."""
        ...

    def search_sparse(
        self, name: str, vector: SparseVector, limit: int, filters: Filters = None, with_payload: bool = True
    ) -> list[Hit]: ...

    def search_hybrid(
        self,
        name: str,
        dense,
        sparse: SparseVector,
        limit: int,
        candidates: int,
        fusion: str = "dbsf",
        rrf_k: int = 60,
        filters: Filters = None,
    ) -> list[Hit]: ...

    def rescore(
        self,
        name: str,
        ids: Sequence[str],
        dense=None,
        sparse: SparseVector | None = None,
        windows=None,
    ) -> dict[str, dict[str, float]]:
        """Scores of the given points on each leg asked for: {id: {"dense"|"bm25"|"windows": score}}.

        `windows` is the query vector scored by max-sim against each point's window vectors, or a matrix of query
        vectors (a long query embedded in windows): the sum over its rows of each row's max-sim. A point the
        sparse query shares no term with has no "bm25" entry (its score would be 0)."""
        ...

    def close(self) -> None: ...
