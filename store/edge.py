"""VectorStore on qdrant-edge-py: Qdrant's engine in-process, one EdgeShard per collection."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import qdrant_edge as qe

from .base import DENSE, SPARSE, WINDOWS, StoreError
from .common import (DenseIndex, batches, check_datatype, check_fusion, check_ids, check_name, check_positive,
                     query_rows, rescore_legs, top_hits)
from .filters import Clause, Filter, Filters, Nested, as_filter
from .types import Hit, Point, Record, SparseVector

# Written by EdgeShard.create; marks a directory as a collection.
_MARKER = "edge_config.json"
_EXACT = qe.SearchParams(exact=True)
# The dense graph's parameters (DenseIndex) beside the engine's files: its query-time `ef` has no place in the
# engine's config. Absent: the collection is scanned exactly (every collection made before the graph was an option).
_DENSE_INDEX = "snapdex_dense.json"
# A segment smaller than this (KB of vectors), or a filter matching fewer, is scanned, not walked: Qdrant's default.
_FULL_SCAN_KB = 10_000


def _dense_params(index: DenseIndex | None):
    return _EXACT if index is None else qe.SearchParams(hnsw_ef=index.ef)


def _clause(c: Clause):
    if isinstance(c, Filter):
        return _tree(c)
    if isinstance(c, Nested):
        return qe.NestedCondition(c.key, _tree(c.filter))
    kind, key, value = c
    if kind == "match":
        # qdrant-edge 0.9.0 extracts a Python bool as the integer 0/1 (which then
        # matches nothing); numpy.bool_ is not an int and reaches the Bool variant.
        if isinstance(value, bool):
            value = np.bool_(value)
        return qe.FieldCondition(key, match=qe.MatchValue(value))
    if kind == "any":
        return qe.FieldCondition(key, match=qe.MatchAny(value))
    if kind == "count":
        return qe.FieldCondition(key, values_count=qe.ValuesCount(**value))
    return qe.FieldCondition(key, range=qe.RangeFloat(**value))


def _tree(f: Filter) -> qe.Filter:
    # An empty `should` would match everything: left out, as it means no alternative was asked for.
    return qe.Filter(must=[_clause(c) for c in f.must] or None, should=[_clause(c) for c in f.should] or None)


def _filter(filters: Filters) -> qe.Filter | None:
    tree = as_filter(filters)
    return _tree(tree) if tree is not None else None


def _sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(list(vector.indices), list(vector.values))


def _dense(vector) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32)


def _multi(vectors) -> list[list[float]]:
    return np.asarray(vectors, dtype=np.float32).tolist()


def _vectors(p: Point) -> dict:
    vectors = {DENSE: _dense(p.dense), SPARSE: _sparse(p.sparse)}
    if p.windows is not None and len(p.windows):
        vectors[WINDOWS] = _multi(p.windows)
    return vectors


def _record(r) -> Record:
    vectors = r.vector or {}
    sparse = vectors.get(SPARSE)
    return Record(
        id=str(r.id),
        payload=r.payload or {},
        dense=vectors.get(DENSE),
        sparse=SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        windows=vectors.get(WINDOWS),
    )


def _hits(points) -> list[Hit]:
    return [Hit(id=str(p.id), score=p.score, payload=p.payload or {}) for p in points]


@contextlib.contextmanager
def _engine(what: str):
    # The binding raises bare Exception (and TypeError/ValueError) for engine errors.
    try:
        yield
    except StoreError:
        raise
    except Exception as e:
        raise StoreError(f"qdrant-edge: {what} failed: {e}") from e


class EdgeStore:
    """Collections live in `path/<name>`; a shard is opened on first use and kept open.

    Collections are made without a write-ahead log: a snapshot is written once by its build, which flushes before
    it counts as built (a build that dies half way is dropped and made again), and later writes (access lists,
    deletes) flush before they return. The log cost 45 MB of resident memory per open collection (two 32 MB
    segments, mapped), twice the disk of SciFact's collection, and most of the upsert time
    (9,000 points in batches of 256: 1.13 s with it, 0.18 s without).
    Collections made before keep their log; they load as they are.

    An open shard holds an exclusive lock (`path/.locks/<name>.lock`, the role the log's own lock played): no
    other EdgeStore, in this process or another, can open that collection until close(), so one path serves one
    EdgeStore.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._locks: dict[str, int] = {}  # collection -> the open lock file's descriptor
        self._indexes: dict[str, DenseIndex | None] = {}  # collection -> its dense graph, read once
        # Guards the shard dict and the directories: two threads must not load the
        # same shard twice (the second would fail on the collection's lock). Calls on an open
        # shard need no lock: the binding serializes them itself.
        self._lock = threading.RLock()
        self._closed = False

    def _dir(self, name: str) -> Path:
        return self.path / check_name(name)

    def _shard(self, name: str) -> qe.EdgeShard:
        directory = self._dir(name)
        with self._lock:
            if self._closed:
                raise StoreError("EdgeStore is closed")
            shard = self._shards.get(name)
            if shard is None:
                if not (directory / _MARKER).exists():
                    raise StoreError(f"collection {name!r} does not exist in {self.path}")
                self._lock_collection(name)
                try:
                    with _engine(f"loading collection {name!r}"):
                        shard = qe.EdgeShard.load(str(directory))
                except BaseException:
                    self._unlock_collection(name)
                    raise
                self._shards[name] = shard
            return shard

    def _lock_collection(self, name: str) -> None:
        locks = self.path / ".locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"qdrant-edge: collection {name!r} in {self.path} is open in another EdgeStore (the "
                             "embedded engine serves one process per data folder)") from None
        self._locks[name] = fd

    def _unlock_collection(self, name: str) -> None:
        fd = self._locks.pop(name, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases its lock

    def create_collection(
        self, name: str, dense_dim: int, keyword_indexes: Sequence[str] = (), windows: bool = False,
        datatype: str = "float32", dense_index: DenseIndex | None = None,
    ) -> None:
        directory = self._dir(name)
        check_positive("dense_dim", dense_dim)
        stored = {"float32": qe.VectorStorageDatatype.Float32,
                  "float16": qe.VectorStorageDatatype.Float16,
                  "turbo8": qe.VectorStorageDatatype.Turbo8}[check_datatype(datatype)]
        # Dense vectors stay in memory: every first stage scans them. Window multivectors (about 4 per chunk) and
        # payloads are memory-mapped from disk: a query reads only its candidates' pages. Measured on 30k synthetic
        # points with 4 windows each: all in memory +520 MB of RSS once loaded; windows and payloads on disk +265 MB.
        # With a graph the build's last flush runs the engine's optimizer, which builds it over the sealed segments.
        graph = None if dense_index is None else qe.HnswIndexConfig(
            m=dense_index.m, ef_construct=dense_index.ef_construct, full_scan_threshold=_FULL_SCAN_KB)
        vectors = {DENSE: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine, datatype=stored,
                                              memory=qe.Memory.Cold, hnsw_config=graph)}
        if windows:
            vectors[WINDOWS] = qe.EdgeVectorParams(
                size=dense_dim,
                distance=qe.Distance.Cosine,
                on_disk=True,
                datatype=stored,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                # m=0: no graph. Windows only rescore a few candidates by id; a graph would cost build time.
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            )
        config = qe.EdgeConfig(
            vectors=vectors,
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            on_disk_payload=True,
            wal_enabled=False,
        )
        with self._lock:
            if self._closed:
                raise StoreError("EdgeStore is closed")
            if self.has_collection(name):
                raise StoreError(f"collection {name!r} already exists in {self.path}")
            # Outside the try: a collection another store is making must not be cleaned up from under it.
            self._lock_collection(name)
            try:
                with _engine(f"creating collection {name!r}"):
                    shard = qe.EdgeShard.create(str(directory), config)
                    self._shards[name] = shard
                    for field in keyword_indexes:
                        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
                    shard.flush()
                if dense_index is not None:
                    (directory / _DENSE_INDEX).write_text(json.dumps(dense_index.canonical()))
                self._indexes[name] = dense_index
            except BaseException:
                # A half-made collection would later load without its indexes.
                self.delete_collection(name)
                raise

    def has_collection(self, name: str) -> bool:
        directory = self._dir(name)
        return name in self._shards or (directory / _MARKER).exists()

    def list_collections(self) -> list[str]:
        with self._lock:
            return sorted(p.name for p in self.path.iterdir() if (p / _MARKER).exists())

    def delete_collection(self, name: str) -> None:
        directory = self._dir(name)
        with self._lock:
            shard = self._shards.pop(name, None)
            self._indexes.pop(name, None)
            with _engine(f"deleting collection {name!r}"):
                if shard is not None:
                    shard.close()
                self._unlock_collection(name)
                # Marker first: a half-removed directory must not look like a collection.
                (directory / _MARKER).unlink(missing_ok=True)
                if directory.exists():
                    shutil.rmtree(directory)
                (self.path / ".locks" / f"{name}.lock").unlink(missing_ok=True)

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        shard = self._shard(name)
        for batch in batches(points):
            ids = check_ids([p.id for p in batch])
            edge_points = [
                qe.Point(pid, _vectors(p), p.payload)
                for pid, p in zip(ids, batch)
            ]
            with _engine(f"upsert into {name!r}"):
                shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def flush(self, name: str) -> None:
        shard = self._shard(name)
        with _engine(f"flushing {name!r}"):
            shard.flush()
            # The graph is built here, once the build has written every point: built while points still arrive,
            # segments would be indexed and then merged and indexed again. Returns at once when nothing changed.
            if self.dense_index(name) is not None and shard.optimize():
                shard.flush()

    def dense_index(self, name: str) -> DenseIndex | None:
        """The collection's dense graph, or None: its dense searches scan every vector."""
        with self._lock:
            if name not in self._indexes:
                stored = self._dir(name) / _DENSE_INDEX
                fields = json.loads(stored.read_text()) if stored.exists() else None
                self._indexes[name] = DenseIndex.from_canonical(fields)
            return self._indexes[name]

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        ids = check_ids(ids)
        shard = self._shard(name)
        if ids:
            with _engine(f"delete from {name!r}"):
                shard.update(qe.UpdateOperation.delete_points(ids))
                shard.flush()

    def set_payloads(self, name: str, payloads: Mapping[str, dict]) -> None:
        shard = self._shard(name)
        ids = check_ids(list(payloads))
        # Only ids the collection holds: the engine would otherwise fail the whole batch on the first unknown one.
        with _engine(f"set payload in {name!r}"):
            held = {str(r.id) for r in shard.retrieve(ids, False, False)} if ids else set()
            for pid, fields in zip(ids, payloads.values()):
                if pid in held:
                    shard.update(qe.UpdateOperation.set_payload([pid], fields))
            if held:
                shard.flush()

    def count(self, name: str, filters: Filters = None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(filters))
        shard = self._shard(name)
        with _engine(f"count in {name!r}"):
            return shard.count(request)

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool | Sequence[str] = False,
                 with_payload: bool = True) -> list[Record]:
        ids = check_ids(ids)
        shard = self._shard(name)
        wanted = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        with _engine(f"retrieve from {name!r}"):
            found = {str(r.id): _record(r) for r in shard.retrieve(ids, with_payload, wanted)}
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
        request = qe.ScrollRequest(
            offset=check_ids([offset])[0] if offset is not None else None,
            limit=limit,
            filter=_filter(filters),
            with_payload=True,
            with_vector=with_vectors,
        )
        shard = self._shard(name)
        with _engine(f"scroll in {name!r}"):
            records, next_offset = shard.scroll(request)
        return [_record(r) for r in records], str(next_offset) if next_offset is not None else None

    def _fetcher(self, name: str, what: str, build):
        """fetch(n) for top_hits: runs the request build(n) on the collection's shard."""
        shard = self._shard(name)

        def fetch(n: int) -> list[Hit]:
            with _engine(f"{what} in {name!r}"):
                return _hits(shard.query(build(n)))

        return fetch

    def search_dense(self, name: str, vector, limit: int, filters: Filters = None,
                     with_payload: bool = True) -> list[Hit]:
        query, flt = qe.Query.Nearest(_dense(vector), using=DENSE), _filter(filters)
        params = _dense_params(self.dense_index(name))
        fetch = self._fetcher(
            name,
            "dense search",
            lambda n: qe.QueryRequest(limit=n, query=query, filter=flt, params=params, with_payload=with_payload),
        )
        return top_hits(fetch, limit)

    def search_sparse(self, name: str, vector: SparseVector, limit: int, filters: Filters = None,
                      with_payload: bool = True) -> list[Hit]:
        query, flt = qe.Query.Nearest(_sparse(vector), using=SPARSE), _filter(filters)
        fetch = self._fetcher(
            name,
            "sparse search",
            lambda n: qe.QueryRequest(limit=n, query=query, filter=flt, with_payload=with_payload),
        )
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
        prefetches = [
            qe.Prefetch(
                limit=candidates,
                query=qe.Query.Nearest(_dense(dense), using=DENSE),
                params=_dense_params(self.dense_index(name)),
                filter=flt,
            ),
            qe.Prefetch(limit=candidates, query=qe.Query.Nearest(_sparse(sparse), using=SPARSE), filter=flt),
        ]
        fused = qe.Fusion.Rrf(k=rrf_k) if fusion == "rrf" else qe.Fusion.Dbsf()
        fetch = self._fetcher(
            name,
            "hybrid search",
            lambda n: qe.QueryRequest(limit=n, prefetches=prefetches, query=fused, with_payload=True),
        )
        return top_hits(fetch, limit)

    def rescore(self, name: str, ids: Sequence[str], dense=None, sparse: SparseVector | None = None,
                windows=None) -> dict[str, dict[str, float]]:
        ids = list(dict.fromkeys(check_ids(ids)))
        scores: dict[str, dict[str, float]] = {i: {} for i in ids}
        if not ids:
            return scores
        shard = self._shard(name)
        only = qe.Filter(must=[qe.HasIdCondition(set(ids))])
        # Max-sim compares against a multivector: one query vector is a list of one.
        convert = {DENSE: _dense, SPARSE: _sparse, WINDOWS: lambda v: query_rows(v).tolist()}
        legs = rescore_legs(dense, sparse, windows)
        requests = [qe.QueryRequest(limit=len(ids), query=qe.Query.Nearest(convert[using](vector), using=using),
                                    filter=only, params=_EXACT, with_payload=False) for _, using, vector in legs]
        if not requests:
            return scores
        # One planned batch: the legs share the id filter's pass over the segments.
        with _engine(f"rescoring ({', '.join(leg for leg, _, _ in legs)}) in {name!r}"):
            answers = shard.query_batch(qe.QueryBatchRequest(requests))
        for (leg, _, _), points in zip(legs, answers):
            for p in points:
                scores[str(p.id)][leg] = p.score
        return scores

    def close(self) -> None:
        with self._lock:
            self._closed = True
            shards, self._shards = self._shards, {}
            errors = []
            for name, shard in shards.items():
                try:
                    shard.flush()
                    shard.close()
                except Exception as e:
                    errors.append((name, e))
            for name in list(self._locks):
                self._unlock_collection(name)
            if errors:
                name, e = errors[0]
                raise StoreError(f"qdrant-edge: closing {len(errors)} collection(s) failed, first {name!r}: {e}") from e
