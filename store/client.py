"""VectorStore on qdrant-client: a Qdrant server in production, or the client's local mode."""

from __future__ import annotations

import contextlib
import threading
from typing import Mapping, Sequence

import grpc
import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from .base import DENSE, SPARSE, WINDOWS, StoreError, StoreUnavailable
from .common import (DenseIndex, batches, check_datatype, check_fusion, check_ids, check_name, check_positive,
                     query_rows, rescore_legs, top_hits)
from .filters import Clause, Filter, Filters, Nested, as_filter
from .types import Hit, Point, Record, SparseVector

_EXACT = qm.SearchParams(exact=True)
# The collection's metadata key holding its dense graph (DenseIndex.canonical()): the query-time ef has no place in
# the collection's config. Absent: exact scans, as every collection made before the graph was an option.
_DENSE_INDEX = "snapdex_dense"
_RETRY_STATUS = {429, 502, 503, 504}
_RETRY_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _clause(c: Clause):
    if isinstance(c, Filter):
        return _tree(c)
    if isinstance(c, Nested):
        return qm.NestedCondition(nested=qm.Nested(key=c.key, filter=_tree(c.filter)))
    kind, key, value = c
    if kind == "match":
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
    if kind == "any":
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=value))
    if kind == "count":
        return qm.FieldCondition(key=key, values_count=qm.ValuesCount(**value))
    return qm.FieldCondition(key=key, range=qm.Range(**value))


def _tree(f: Filter) -> qm.Filter:
    return qm.Filter(must=[_clause(c) for c in f.must] or None, should=[_clause(c) for c in f.should] or None)


def _filter(filters: Filters) -> qm.Filter | None:
    tree = as_filter(filters)
    return _tree(tree) if tree is not None else None


def _sparse(vector: SparseVector) -> qm.SparseVector:
    return qm.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _dense(vector) -> list[float]:
    return np.asarray(vector, dtype=np.float32).tolist()


def _vectors(p: Point) -> dict:
    vectors = {DENSE: _dense(p.dense), SPARSE: _sparse(p.sparse)}
    if p.windows is not None and len(p.windows):
        vectors[WINDOWS] = np.asarray(p.windows, dtype=np.float32).tolist()
    return vectors


def _record(r) -> Record:
    vectors = r.vector if isinstance(r.vector, dict) else {}
    sparse = vectors.get(SPARSE)
    return Record(
        id=str(r.id),
        payload=r.payload or {},
        dense=vectors.get(DENSE),
        sparse=SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        windows=vectors.get(WINDOWS),
    )


def _retry_after(e: Exception) -> float | None:
    """Seconds to wait if `e` means the server is unreachable or overloaded, else None."""
    if isinstance(e, ResourceExhaustedResponse):
        return float(e.retry_after_s)
    if isinstance(e, UnexpectedResponse) and e.status_code in _RETRY_STATUS:
        try:
            return float(e.headers.get("Retry-After", 1))
        except ValueError:
            return 1.0
    if isinstance(e, ResponseHandlingException):
        e = e.source  # wraps both transport errors and malformed responses
    if isinstance(e, (httpx.TransportError, ConnectionError)):
        return 1.0
    if isinstance(e, grpc.RpcError) and e.code() in _RETRY_GRPC:
        return 1.0
    return None


class ClientStore:
    def __init__(self, client: QdrantClient, shards: int | None = None, replicas: int | None = None) -> None:
        """`shards`, `replicas`: shard_number and replication_factor of every collection created on a Qdrant
        cluster (None: the server's defaults, one shard, no replica)."""
        self.client = client
        self.shards, self.replicas = shards, replicas
        options = client.init_options
        self._local = options.get("location") == ":memory:" or options.get("path") is not None
        # Local mode is plain Python dicts and arrays with no locking of its own; the
        # server client (httpx/grpc) is safe to share between threads.
        self._lock = threading.RLock() if self._local else contextlib.nullcontext()
        # Local mode always searches exactly and warns that search params do nothing.
        self._exact = None if self._local else _EXACT
        self._indexes: dict[str, DenseIndex | None] = {}  # collection -> its dense graph, read once

    @classmethod
    def from_url(cls, url: str, api_key: str | None = None, timeout: int = 30, shards: int | None = None,
                 replicas: int | None = None, **client_options) -> ClientStore:
        """`client_options` go to QdrantClient as they are (e.g. prefer_grpc=True)."""
        return cls(QdrantClient(url=url, api_key=api_key, timeout=timeout, **client_options), shards, replicas)

    @contextlib.contextmanager
    def _call(self, what: str):
        try:
            with self._lock:
                yield
        except StoreError:
            raise
        except Exception as e:
            retry_after = _retry_after(e)
            if retry_after is not None:
                raise StoreUnavailable(f"qdrant unavailable during {what}: {e}", retry_after) from e
            raise StoreError(f"qdrant: {what} failed: {e}") from e

    def create_collection(
        self, name: str, dense_dim: int, keyword_indexes: Sequence[str] = (), windows: bool = False,
        datatype: str = "float32", dense_index: DenseIndex | None = None,
    ) -> None:
        check_name(name)
        check_positive("dense_dim", dense_dim)
        stored = qm.Datatype(check_datatype(datatype))
        graph = None if dense_index is None else qm.HnswConfigDiff(m=dense_index.m,
                                                                    ef_construct=dense_index.ef_construct)
        vectors = {DENSE: qm.VectorParams(size=dense_dim, distance=qm.Distance.COSINE, datatype=stored,
                                          hnsw_config=graph)}
        if windows:
            vectors[WINDOWS] = qm.VectorParams(
                size=dense_dim,
                distance=qm.Distance.COSINE,
                datatype=stored,
                multivector_config=qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM),
                hnsw_config=qm.HnswConfigDiff(m=0),  # rescoring by id only: no graph to build
            )
        with self._call(f"creating collection {name!r}"):
            if self.client.collection_exists(name):
                raise StoreError(f"collection {name!r} already exists")
            # Local mode has no cluster: shards and replicas only mean something to a server.
            cluster = {} if self._local else {"shard_number": self.shards, "replication_factor": self.replicas}
            self.client.create_collection(
                name,
                vectors_config=vectors,
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                metadata={_DENSE_INDEX: dense_index.canonical()} if dense_index is not None else None,
                **{k: v for k, v in cluster.items() if v is not None},
            )
            self._indexes[name] = dense_index
            # Local mode ignores payload indexes (and warns about it).
            if not self._local:
                for field in keyword_indexes:
                    self.client.create_payload_index(name, field, qm.PayloadSchemaType.KEYWORD, wait=True)

    def has_collection(self, name: str) -> bool:
        check_name(name)
        with self._call(f"checking collection {name!r}"):
            return self.client.collection_exists(name)

    def list_collections(self) -> list[str]:
        with self._call("listing collections"):
            return sorted(c.name for c in self.client.get_collections().collections)

    def delete_collection(self, name: str) -> None:
        check_name(name)
        with self._call(f"deleting collection {name!r}"):
            # Absent is fine here, whatever the server would answer for it; so ask first.
            self._indexes.pop(name, None)
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        for batch in batches(points):
            structs = [
                qm.PointStruct(id=pid, vector=_vectors(p), payload=p.payload)
                for pid, p in zip(check_ids([p.id for p in batch]), batch)
            ]
            with self._call(f"upsert into {name!r}"):
                self.client.upsert(name, structs, wait=True)

    def flush(self, name: str) -> None:
        """Nothing to do: the server's write-ahead log made each write durable when it was acknowledged, and its
        optimizer builds a dense graph in the background (searches scan what it has not indexed yet)."""

    def dense_index(self, name: str) -> DenseIndex | None:
        """The collection's dense graph, or None: its dense searches scan every vector."""
        if name not in self._indexes:
            with self._call(f"reading collection {name!r}"):
                metadata = self.client.get_collection(name).config.metadata or {}
            self._indexes[name] = DenseIndex.from_canonical(metadata.get(_DENSE_INDEX))
        return self._indexes[name]

    def _dense_params(self, name: str):
        index = self.dense_index(name)
        if index is None or self._local:
            return self._exact
        return qm.SearchParams(hnsw_ef=index.ef)

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        ids = check_ids(ids)
        if ids:
            with self._call(f"delete from {name!r}"):
                self.client.delete(name, qm.PointIdsList(points=ids), wait=True)

    def set_payloads(self, name: str, payloads: Mapping[str, dict]) -> None:
        ids = check_ids(list(payloads))
        for part in batches(list(zip(ids, payloads.values()))):
            with self._call(f"set payload in {name!r}"):
                # Only ids the collection holds: an unknown one would fail the whole batch.
                held = {str(r.id) for r in self.client.retrieve(name, [i for i, _ in part], with_payload=False)}
                ops = [qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=fields, points=[pid]))
                       for pid, fields in part if pid in held]
                if ops:
                    self.client.batch_update_points(name, ops, wait=True)

    def count(self, name: str, filters: Filters = None) -> int:
        flt = _filter(filters)
        with self._call(f"count in {name!r}"):
            return self.client.count(name, count_filter=flt, exact=True).count

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool | Sequence[str] = False,
                 with_payload: bool = True) -> list[Record]:
        ids = check_ids(ids)
        wanted = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        with self._call(f"retrieve from {name!r}"):
            records = self.client.retrieve(name, ids, with_payload=with_payload, with_vectors=wanted)
        found = {str(r.id): _record(r) for r in records}
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def scroll(
        self,
        name: str,
        filters: Filters = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Record], str | None]:
        check_positive("limit", limit)
        flt = _filter(filters)
        offset = check_ids([offset])[0] if offset is not None else None
        with self._call(f"scroll in {name!r}"):
            records, next_offset = self.client.scroll(
                name, scroll_filter=flt, limit=limit, offset=offset, with_payload=True, with_vectors=with_vectors
            )
        return [_record(r) for r in records], str(next_offset) if next_offset is not None else None

    def _fetcher(self, name: str, what: str, with_payload: bool = True, **request):
        """fetch(n) for top_hits: one query_points call with limit n."""

        def fetch(n: int) -> list[Hit]:
            with self._call(f"{what} in {name!r}"):
                points = self.client.query_points(name, limit=n, with_payload=with_payload, **request).points
            return [Hit(id=str(p.id), score=p.score, payload=p.payload or {}) for p in points]

        return fetch

    def search_dense(self, name: str, vector, limit: int, filters: Filters = None,
                     with_payload: bool = True) -> list[Hit]:
        flt = _filter(filters)
        fetch = self._fetcher(
            name, "dense search", with_payload, query=_dense(vector), using=DENSE, query_filter=flt,
            search_params=self._dense_params(name)
        )
        return top_hits(fetch, limit)

    def search_sparse(self, name: str, vector: SparseVector, limit: int, filters: Filters = None,
                      with_payload: bool = True) -> list[Hit]:
        fetch = self._fetcher(name, "sparse search", with_payload, query=_sparse(vector), using=SPARSE,
                              query_filter=_filter(filters))
        return top_hits(fetch, limit)

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
    ) -> list[Hit]:
        check_fusion(fusion, rrf_k)
        check_positive("candidates", candidates)
        flt = _filter(filters)
        prefetch = [
            qm.Prefetch(query=_dense(dense), using=DENSE, limit=candidates, filter=flt,
                        params=self._dense_params(name)),
            qm.Prefetch(query=_sparse(sparse), using=SPARSE, limit=candidates, filter=flt),
        ]
        query = qm.RrfQuery(rrf=qm.Rrf(k=rrf_k)) if fusion == "rrf" else qm.FusionQuery(fusion=qm.Fusion.DBSF)
        return top_hits(self._fetcher(name, "hybrid search", prefetch=prefetch, query=query), limit)

    def rescore(self, name: str, ids: Sequence[str], dense=None, sparse: SparseVector | None = None,
                windows=None) -> dict[str, dict[str, float]]:
        ids = list(dict.fromkeys(check_ids(ids)))
        scores: dict[str, dict[str, float]] = {i: {} for i in ids}
        if not ids:
            return scores
        only = qm.Filter(must=[qm.HasIdCondition(has_id=ids)])
        # Max-sim compares against a multivector: one query vector is a list of one.
        convert = {DENSE: _dense, SPARSE: _sparse, WINDOWS: lambda v: query_rows(v).tolist()}
        legs = rescore_legs(dense, sparse, windows)
        requests = [qm.QueryRequest(query=convert[using](vector), using=using, filter=only, limit=len(ids),
                                    params=self._exact, with_payload=False) for _, using, vector in legs]
        if not requests:
            return scores
        with self._call(f"rescoring ({', '.join(leg for leg, _, _ in legs)}) in {name!r}"):
            answers = self.client.query_batch_points(name, requests=requests)
        for (leg, _, _), answer in zip(legs, answers):
            for p in answer.points:
                scores[str(p.id)][leg] = p.score
        return scores

    def close(self) -> None:
        with self._call("closing the client"):
            self.client.close()
