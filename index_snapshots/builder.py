"""Build a tenant's snapshot: an immutable Qdrant collection named by hash(config, chunk hashes, sources).

The same documents under the same configuration give the same hash, so a rebuild with nothing new finds
its collection already built and does nothing. Vectors come from the embedding cache; only chunks never
embedded under this model reach the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from encoders.embedding import EmbeddingService
from encoders.lexical import (DEFAULT_LANGUAGE, TOKENIZER_VERSION, BM25Params, average_length, document_vector,
                              has_cjk, term_counts)
from ingest.access import FIELD as ACCESS, TWINS, document_tokens, merge_metadata, point_tokens
from ingest.catalog import Catalog, ChunkRow, DocumentRow, unique_chunks, unique_hashes
from ingest.chunking import Chunker, ChunkerConfig
from ingest.filters import SOURCE_METADATA, SOURCE_METADATA_KEY
from ingest.jobs import sent_at
from ingest.language import detect_language, document_language
from ingest.windows import WindowConfig, chunk_windows, embed_chunks
from index_snapshots.access import AccessSync
from index_snapshots.manifest import Manifest
from index_snapshots.status import BUILT
from store.base import StoreUnavailable, VectorStore
from store.common import DenseIndex, dense_index_for
from store.payload import payload_problem
from store.types import Point

log = logging.getLogger(__name__)

LANGUAGES_KEY = "languages"  # in a snapshot's config: the languages of its documents
# In a snapshot's config when its dense vectors have an HNSW graph (store.common.DenseIndex): the graph's candidates
# differ a little from the exact scan's. Absent: the exact scan, so a snapshot hashes as before the graph existed.
DENSE_KEY = "dense"
# Payload fields with keyword indexes: the tenant filter, the usual metadata filters and the access filter (every
# read on behalf of a principal) run inside Qdrant; an access change finds a document's points, and those naming it
# as a twin, through doc_ids and TWINS (unindexed, that scan took 120-170 ms a snapshot at 20k chunks; indexed, 2 ms).
KEYWORD_INDEXES = ("tenant", "doc_ids", ACCESS, TWINS)
# The payload's access tokens (ingest/access.py), in the config so that a snapshot built before them is never taken
# for one of the same hash: its chunks carry no `access` field, which a principal's filter would match nowhere.
ACCESS_PAYLOAD = "tokens-v1"


@dataclass(frozen=True)
class IndexConfig:
    parser_version: str
    chunker: ChunkerConfig
    model_id: str
    dim: int
    bm25: BM25Params = BM25Params()
    windows: WindowConfig | None = WindowConfig()  # sentence-window multivectors for the late-interaction stage
    vectors: str = "float16"  # how dense and window vectors are stored (store.common.VECTOR_DATATYPES)
    dense_index: str = "exact"  # exact, hnsw or auto (store.common.DENSE_INDEX_MODES)
    dense_index_threshold: int = 120_000  # auto: the graph from this many chunks on

    def dense_for(self, chunks: int) -> DenseIndex | None:
        """The dense graph a snapshot of `chunks` chunks is built with, or None (the exact scan)."""
        return dense_index_for(self.dense_index, chunks, self.dense_index_threshold)

    def dense_config(self, chunks: int) -> dict:
        """The part of a snapshot's config the dense index adds, for `chunks` chunks."""
        index = self.dense_for(chunks)
        return {DENSE_KEY: index.canonical()} if index is not None else {}

    def canonical(self) -> dict:
        return {
            "parser": self.parser_version,
            "chunker": self.chunker.canonical(),
            "embedding": {"model": self.model_id, "dim": self.dim},
            "bm25": {"tokenizer": TOKENIZER_VERSION, "k1": self.bm25.k1, "b": self.bm25.b, "idf": "qdrant-modifier",
                     # 0 (the chunk alone) hashes as before it existed
                     **({"document": self.bm25.document} if self.bm25.document else {})},
            "windows": self.windows.canonical() if self.windows else None,
            **({"vectors": self.vectors} if self.vectors != "float32" else {}),  # float32: hashes as before
            "access": ACCESS_PAYLOAD,
            SOURCE_METADATA_KEY: SOURCE_METADATA,  # every source with its document's metadata (see `_point`)
        }


@dataclass(frozen=True)
class BuildResult:
    hash: str
    collection: str
    built: bool          # False when the same snapshot already existed
    documents: int
    chunks: int
    embedded: int
    reused: int
    seconds: float
    # Documents left out because the vector store cannot hold their payload: doc id -> why (naming the field).
    refused: dict[str, str] = field(default_factory=dict)


def point_id(chunk_hash: str) -> str:
    return str(uuid.UUID(hex=chunk_hash[:32]))


def collection_name(tenant: str, snap_hash: str) -> str:
    return f"snap-{tenant}-{snap_hash[:24]}"


class PayloadRefused(Exception):
    """The store refused the payload of some points of a build: their documents (doc id -> why) are left out and
    the build starts again without them."""

    def __init__(self, documents: dict[str, str]) -> None:
        super().__init__("; ".join(f"{d}: {r}" for d, r in sorted(documents.items())[:10]))
        self.documents = documents


def document_payload_problem(doc: DocumentRow) -> str | None:
    """Why a document's fields cannot go into its chunks' payloads (a NaN or 1e309 in its metadata, an integer past
    64 bits, a lone surrogate), or None. Checked before a build writes a point: one such document fails alone."""
    fields = {"doc_id": doc.doc_id, "source": doc.source, "title": doc.title, "metadata": doc.hit_metadata(),
              ACCESS: document_tokens(doc.access)}
    for name, value in fields.items():
        if problem := payload_problem(value, name):
            return problem
    return None


def _sources_of(docs: list[DocumentRow]) -> dict[str, list[DocumentRow]]:
    by_chunk: dict[str, list[DocumentRow]] = defaultdict(list)
    for d in docs:
        for h in d.chunk_hashes:
            by_chunk[h].append(d)
    return by_chunk


def snapshot_hash(config: dict, docs: list[DocumentRow]) -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    # Chunk content hashes, and which documents (with which metadata) each chunk is served for: a metadata
    # change must reach the payloads that filters read.
    for chunk in sorted({c for d in docs for c in d.chunk_hashes}):
        h.update(chunk.encode())
    # Access lists too (payload only: a changed list makes a new snapshot whose vectors all come from the cache).
    for d in sorted(docs, key=lambda d: d.doc_id):
        h.update(json.dumps([d.doc_id, d.source, d.title, d.hit_metadata(), d.chunk_hashes, d.access],
                            sort_keys=True).encode())
    return h.hexdigest()


def _terms_in(row: ChunkRow, language: str) -> ChunkRow:
    """The chunk's BM25 term counts in its first document's language. Those counted at ingest serve where they are
    what this tokenizer makes: English text without CJK characters (English analysis is the same under lex3 and
    lex4) counted in English (no language-prefixed term). Anything else is counted again here: a document whose
    language was found after its ingest, a chunk first stored for a document of another language."""
    if language == DEFAULT_LANGUAGE and not has_cjk(row.text) and not any(":" in t for t in row.terms):
        return row
    return ChunkRow(row.chunk_hash, row.text, term_counts(row.text, language))


def _document_terms(docs: list[DocumentRow], rows: dict[str, ChunkRow]) -> dict[str, dict[str, int]]:
    """Each document's BM25 term counts, for the share of a chunk's weights its document gives (BM25Params.document):
    its stored text counted in its language, or, without stored text, the sum of its chunks' counts."""
    out: dict[str, dict[str, int]] = {}
    for d in docs:
        if d.text:
            out[d.doc_id] = term_counts(d.text, d.language)
            continue
        total: Counter = Counter()
        for h in dict.fromkeys(d.chunk_hashes):
            total.update(rows[h].terms)
        out[d.doc_id] = dict(total)
    return out


def twin_groups(docs: list[DocumentRow]) -> dict[str, list[str]]:
    """Each document's near-duplicate twins among `docs` (the indexed ones): documents linked by `duplicate_of`,
    transitively, form a group; a twin deleted leaves the others their own documents."""
    ids = {d.doc_id for d in docs}
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for d in docs:
        if d.duplicate_of in ids:
            parent[root(d.doc_id)] = root(d.duplicate_of)
    groups: dict[str, list[str]] = defaultdict(list)
    for i in sorted(ids):
        groups[root(i)].append(i)
    return {i: [j for j in groups[root(i)] if j != i] for i in ids if len(groups[root(i)]) > 1}


class _Layout:
    """Where each chunk of one document is: its place in a point's `sources` entry. A chunk repeated inside the
    document is placed at its first occurrence."""

    def __init__(self, doc: DocumentRow, twins: list[DocumentRow] | None = None, sent: float | None = None) -> None:
        self.doc = doc
        self.twins = twins or []
        self.sent = sent
        self.spans = doc.spans()
        self.first: dict[str, int] = {}
        for i, c in enumerate(self.spans):
            self.first.setdefault(c.hash, i)
        self.position = {h: i for i, h in enumerate(doc.chunk_hashes)}

    def verbatim(self, chunk_hash: str, text: str) -> bool:
        i = self.first.get(chunk_hash)
        return i is not None and self.doc.text is not None and \
            self.doc.text[self.spans[i].start:self.spans[i].end] == text

    def place(self, chunk_hash: str) -> dict:
        out: dict = {"position": self.position[chunk_hash]}
        if self.twins:  # near-duplicate twins, and when this one was ingested: retrieval keeps the newest's hits
            # Each twin's access tokens too: a reader is told only of the twins it may read (visible_payload).
            out.update(twins=[t.doc_id for t in self.twins], updated_at=self.doc.updated_at,
                       twin_access=[document_tokens(t.access) for t in self.twins])
            if self.sent is not None:  # which twin is newer is decided by when each was sent (retrieval.pruning)
                out["sent_at"] = self.sent
        i = self.first.get(chunk_hash)
        if i is None:  # not chunked with offsets (no stored text): nothing to cite by place
            return out
        c = self.spans[i]
        prev = self.spans[i - 1] if i > 0 else None
        nxt = self.spans[i + 1] if i + 1 < len(self.spans) else None
        # Neighbours by chunk hash (context expansion reads them from the snapshot itself, so a passage never
        # mixes snapshots), and the stored text between this chunk and the next (white space, usually) so that
        # joined neighbours are still exactly a span of the stored text.
        if c.table:  # which table of the document, which of its data rows (1-based)
            out["table"] = {"number": c.table[0], "rows": [c.table[1], c.table[2]]}
        return {**out, "start": c.start, "end": c.end, "headings": list(c.headings), "pages": list(c.pages),
                "prev": prev.hash if prev else None, "next": nxt.hash if nxt else None,
                "after": self.doc.text[c.end:nxt.start] if nxt and nxt.start > c.end and self.doc.text else ""}


class SnapshotBuilder:
    def __init__(self, catalog: Catalog, manifest: Manifest, store: VectorStore, embedding: EmbeddingService,
                 config: IndexConfig, batch_size: int = 256, access: "AccessSync | None" = None) -> None:
        self.access = access
        self.catalog = catalog
        self.manifest = manifest
        self.store = store
        self.embedding = embedding
        self.config = config
        self.batch_size = batch_size

    # Builds started again after the store refused some documents' payloads: each round leaves more out, and a
    # refusal no document explains (every point of a batch refused alone) fails the build instead.
    REFUSAL_ROUNDS = 3

    def build(self, tenant: str) -> BuildResult:
        """The caller holds the tenant's build lock: SnapshotService takes it around the build, the gate and the
        promotion, so that one verdict at a time decides what is live. A document whose payload the store cannot
        hold is left out of the snapshot, named in `refused`; the others build."""
        refused: dict[str, str] = {}
        for _ in range(self.REFUSAL_ROUNDS):
            try:
                return self._build(tenant, refused)
            except PayloadRefused as e:
                refused.update(e.documents)
                log.warning("the vector store refused the payload of %d documents of %s; building without them: %s",
                            len(e.documents), tenant, e)
        return self._build(tenant, refused)

    def _build(self, tenant: str, refused: dict[str, str]) -> BuildResult:
        started = time.perf_counter()
        docs = self._rechunk(tenant, self._languages(tenant, list(self.catalog.documents(tenant, status="indexed"))))
        refused = {**refused, **{d.doc_id: p for d in docs if (p := document_payload_problem(d)) is not None}}
        docs = [d for d in docs if d.doc_id not in refused]
        config = self.config.canonical()
        # The languages BM25 analysed the documents in: queries are analysed in each of them (see
        # encoders.lexical.query_counts). Part of the snapshot's config because the content decides it, not settings.
        config[LANGUAGES_KEY] = sorted({d.language for d in docs}) or [DEFAULT_LANGUAGE]
        sources = _sources_of(docs)
        dense = self.config.dense_for(len(sources))
        config.update(self.config.dense_config(len(sources)))
        snap = snapshot_hash(config, docs)
        name = collection_name(tenant, snap)
        existing = self.manifest.get(tenant, snap)
        if existing and existing.status in BUILT and self.store.has_collection(name):
            return BuildResult(snap, name, False, existing.documents, existing.chunks, 0, 0, 0.0, refused)

        live = self.manifest.live(tenant)
        self.manifest.begin(tenant, snap, name, live.hash if live else None, config)
        try:
            # A collection left by a build that died half way is not trusted: start it again.
            self.store.delete_collection(name)
            self.store.create_collection(name, self.config.dim, keyword_indexes=KEYWORD_INDEXES,
                                         windows=self.config.windows is not None, datatype=self.config.vectors,
                                         dense_index=dense)
            twins = twin_groups(docs)
            by_id = {d.doc_id: d for d in docs}
            sent = sent_at(self.catalog.db, tenant, list(twins))
            layouts = {d.doc_id: _Layout(d, [by_id[t] for t in twins.get(d.doc_id, [])], sent.get(d.doc_id))
                       for d in docs}
            hashes = sorted(sources)
            rows = self.catalog.chunks(tenant, hashes)
            missing = [h for h in hashes if h not in rows]
            if missing:
                raise RuntimeError(f"{len(missing)} chunks are referenced but absent from the catalog")
            rows = {h: _terms_in(r, sources[h][0].language) for h, r in rows.items()}
            avgdl = average_length(r.terms for r in rows.values())
            whole = _document_terms(docs, rows) if self.config.bm25.document else {}
            whole_avgdl = average_length(whole.values())
            embedded = 0
            for i in range(0, len(hashes), self.batch_size):
                part = hashes[i : i + self.batch_size]
                got = embed_chunks(self.embedding, {h: (rows[h].text, sources[h][0].title) for h in part},
                                   self.config.windows)
                embedded += got.embedded
                # Each chunk's length in the model's word pieces: the context builder's default tokenizer reads it
                # instead of counting every hit again at query time.
                tokens = dict(zip(part, self.embedding.backend.count_tokens([rows[h].text for h in part])))
                self._upsert(name, [self._point(tenant, h, rows[h], got.vectors[h], sources[h], avgdl,
                                                got.windows.get(h), layouts, tokens[h],
                                                (whole.get(sources[h][0].doc_id), whole_avgdl)) for h in part])
            # What this snapshot cost in model time: chunks its parent did not hold were embedded for it (at
            # ingest or just now); the rest were carried over.
            embedded = max(embedded, len(hashes) - len(self._parent_ids(live) & {point_id(h) for h in hashes}))
            if self.access is not None:
                # A list changed while this build ran is written into its collection before it can answer.
                self.access.reconcile(tenant, name, {d.doc_id: d.access for d in docs})
            # Durable before the manifest calls it built (the embedded engine keeps no write-ahead log).
            self.store.flush(name)
            count = self.store.count(name)
            if count != len(hashes):
                raise RuntimeError(f"collection {name} holds {count} points, expected {len(hashes)}")
        except Exception as e:
            self.manifest.fail(tenant, snap, f"{type(e).__name__}: {e}")
            raise
        seconds = time.perf_counter() - started
        self.manifest.finish(tenant, snap, documents=len(docs), chunks=len(hashes), embedded=embedded,
                             reused=len(hashes) - embedded, seconds=seconds)
        log.info("built snapshot %s for %s: %d chunks, %d embedded", snap[:12], tenant, len(hashes), embedded)
        return BuildResult(snap, name, True, len(docs), len(hashes), embedded, len(hashes) - embedded, seconds, refused)

    def _upsert(self, name: str, points: list[Point]) -> None:
        """Write a batch. When the store refuses it for a reason `document_payload_problem` did not foresee, each
        point is tried alone: the documents of those refused are left out (PayloadRefused). If every point is
        refused alone, the fault is not one document's, and the build fails with it."""
        try:
            self.store.upsert(name, points)
            return
        except StoreUnavailable:
            raise
        except Exception as e:
            error = e
        bad: dict[str, str] = {}
        refused_points = 0
        for p in points:
            try:
                self.store.upsert(name, [p])
            except StoreUnavailable:
                raise
            except Exception as e:
                refused_points += 1
                for doc_id in p.payload.get("doc_ids", []):
                    bad.setdefault(doc_id, f"the vector store refused its payload: {type(e).__name__}: {e}")
        if not bad or refused_points == len(points):
            raise error
        raise PayloadRefused(bad)

    def _parent_ids(self, parent) -> set[str]:
        if parent is None or not self.store.has_collection(parent.collection):
            return set()
        ids: set[str] = set()
        offset = None
        while True:
            records, offset = self.store.scroll(parent.collection, limit=2048, offset=offset)
            ids.update(r.id for r in records)
            if offset is None:
                return ids

    def _languages(self, tenant: str, docs: list[DocumentRow]) -> list[DocumentRow]:
        """Documents ingested before languages were recorded get theirs now, once (detected from their stored text,
        or their metadata's `language`): their BM25 terms are then counted in it like every other's."""
        todo = [d for d in docs if "language" not in d.extracted and d.text]
        for d in todo:
            try:
                language = document_language(d.text, d.metadata)
            except ValueError:  # a metadata language not known here: detect instead
                language = detect_language(d.text)
            d.extracted = {**d.extracted, "language": language}
        for i in range(0, len(todo), 500):
            with self.catalog.db.tx() as conn:
                for d in todo[i:i + 500]:
                    self.catalog.set_extracted(conn, tenant, d.doc_id, d.extracted)
        if todo:
            log.warning("found the language of %d documents of %s ingested before languages were", len(todo), tenant)
        return docs

    def _rechunk(self, tenant: str, docs: list[DocumentRow]) -> list[DocumentRow]:
        """A new chunker config re-chunks every document from its stored text: a full build."""
        fp = self.config.chunker.fingerprint()
        stale = [d for d in docs if (d.chunker != fp or d.chunk_spans is None) and d.text]
        if not stale:
            return docs
        chunker = Chunker(self.config.chunker)
        for d in stale:
            chunks = chunker.chunks(d.text, d.structured, d.page_starts)
            with self.catalog.db.tx() as conn:
                self.catalog.put_chunks(conn, tenant, [ChunkRow.of(c.hash, c.text) for c in unique_chunks(chunks)])
                d.chunk_hashes, d.chunker, d.chunk_spans = unique_hashes(chunks), fp, [c.layout() for c in chunks]
                self.catalog.set_chunks(conn, tenant, d.doc_id, d.chunk_hashes, fp, d.chunk_spans)
        log.warning("re-chunked %d documents of %s for chunker %s", len(stale), tenant, fp)
        return docs

    def _point(self, tenant, chunk_hash, row, vector, docs: list[DocumentRow], avgdl: float,
               windows: np.ndarray | None, layouts: dict[str, "_Layout"], tokens: int,
               document: tuple[dict[str, int] | None, float] = (None, 0.0)) -> Point:
        # The documents whose stored text holds the chunk verbatim come first (an exact duplicate may differ from
        # its twin in white space): the first is the hit's document, and its offsets are exact.
        title = docs[0].title  # the title its window vectors were made under (the first document by id)
        docs = sorted(docs, key=lambda d: not layouts[d.doc_id].verbatim(chunk_hash, row.text))
        tokens_of = {d.doc_id: document_tokens(d.access) for d in docs}
        # Each source carries its document's metadata: an answer can leave out the sources (and metadata) of the
        # documents its reader may not see (ingest/access.py, visible_payload), and a request filter reads every
        # condition on one source, in one nested condition (ingest/filters.py: the top level as well, for points of
        # one document, took twice the engine's time).
        sources = [{"doc_id": d.doc_id, "source": d.source, "title": d.title, "access": tokens_of[d.doc_id],
                    "metadata": d.hit_metadata(), **layouts[d.doc_id].place(chunk_hash)} for d in docs]
        payload = {
            "tenant": tenant,
            "chunk_hash": chunk_hash,
            "text": row.text,
            "doc_ids": [d.doc_id for d in docs],
            "sources": sources,
            "metadata": merge_metadata([d.hit_metadata() for d in docs]),
            # The union of its documents' tokens; an access change rewrites it with the same function.
            ACCESS: point_tokens(sources),
            "tokens": {self.config.model_id: tokens},
        }
        if self.config.windows is not None:
            # The character spans of the sentence windows in the chunk text, in the order of its window vectors:
            # the best-scoring windows of a hit are its highlights.
            payload["windows"] = [[w.start, w.end] for w in chunk_windows(row.text, title, self.config.windows)]
        return Point(id=point_id(chunk_hash), dense=vector, windows=windows,
                     sparse=document_vector(row.terms, avgdl, self.config.bm25, *document), payload=payload)
