"""The catalog: which documents a tenant has, their chunks and their term counts.

It is the source of truth a snapshot is built from; Qdrant collections are derived from it and immutable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, bindparam, delete, select, update

from db.engine import Database
from db.tables import chunks as chunks_table
from db.tables import documents, feedback
from encoders.lexical import DEFAULT_LANGUAGE, term_counts
from ingest.chunking import Chunk
from ingest.tenants import TENANT_RE, check_tenant  # noqa: F401  (named here by the API)


@dataclass
class DocumentRow:
    tenant: str
    doc_id: str
    status: str
    content_hash: str | None
    raw_hash: str | None
    source: str | None
    title: str | None
    metadata: dict = field(default_factory=dict)
    chunk_hashes: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    minhash: bytes | None = None
    text: str | None = None
    structured: bool = False
    chunker: str | None = None
    # Every chunk in document order as a span of `text` (Chunk.layout entries); None if chunked before offsets
    # were recorded. `page_starts`: (offset, page) where each page of a PDF starts.
    chunk_spans: list[list] | None = None
    page_starts: list[list[int]] | None = None
    # What the file said about itself and the language of its BM25 terms (see db.tables.documents).
    extracted: dict = field(default_factory=dict)
    access: dict | None = None  # {"users": [...], "groups": [...]}; None: the whole tenant (ingest/access.py)
    updated_at: float = field(default=0.0, compare=False)  # last written (read only: put_document stamps it)

    @property
    def language(self) -> str:
        return self.extracted.get("language") or DEFAULT_LANGUAGE

    def hit_metadata(self) -> dict:
        """What hits carry and filters read: the extracted fields, the user's own over them."""
        return {**self.extracted, **self.metadata}

    def spans(self) -> list[Chunk]:
        """Its chunks in document order (repeats included), each with its offsets, heading path and pages."""
        return [Chunk.from_layout(e) for e in self.chunk_spans or []]

    @classmethod
    def from_row(cls, r: Mapping) -> "DocumentRow":
        return cls(
            tenant=r["tenant"], doc_id=r["doc_id"], status=r["status"], content_hash=r["content_hash"],
            raw_hash=r["raw_hash"], source=r["source"], title=r["title"], metadata=json.loads(r["metadata"]),
            chunk_hashes=json.loads(r["chunk_hashes"]), duplicate_of=r["duplicate_of"], minhash=r["minhash"],
            text=r["text"], structured=bool(r["structured"]), chunker=r["chunker"],
            chunk_spans=json.loads(r["chunk_spans"]) if r.get("chunk_spans") else None,
            page_starts=json.loads(r["page_starts"]) if r.get("page_starts") else None,
            extracted=json.loads(r["extracted_metadata"]) if r.get("extracted_metadata") else {},
            updated_at=r.get("updated_at") or 0.0,
            access=json.loads(r["access"]) if r.get("access") else None,
        )


@dataclass(frozen=True)
class ChunkRow:
    chunk_hash: str
    text: str
    terms: dict[str, int]

    @classmethod
    def of(cls, chunk_hash: str, text: str, language: str = DEFAULT_LANGUAGE) -> "ChunkRow":
        return cls(chunk_hash, text, term_counts(text, language))


def unique_chunks(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Each chunk text once (its first occurrence): what the chunks table holds."""
    first: dict[str, Chunk] = {}
    for c in chunks:
        first.setdefault(c.hash, c)
    return list(first.values())


def unique_hashes(chunks: Sequence[Chunk]) -> list[str]:
    """A document's chunk hashes in order, a chunk repeated inside it listed once (what chunk_hashes holds)."""
    return [c.hash for c in unique_chunks(chunks)]


def _matches(metadata: dict, wanted: dict) -> bool:
    for k, v in wanted.items():
        have = metadata.get(k)
        if not (have == v or (isinstance(have, list) and v in have)):
            return False
    return True


# The statements of the ingest path, built once (bindparams named apart from the columns an UPDATE sets).
_d, _c = documents.c, chunks_table.c
_DOCUMENT = select(documents).where(_d.tenant == bindparam("t"), _d.doc_id == bindparam("d"))
_TWIN = (select(documents).where(_d.tenant == bindparam("t"), _d.content_hash == bindparam("h"),
                                 _d.status == "indexed", _d.doc_id != bindparam("d"))
         .order_by(_d.doc_id).limit(1))
_SET_CHUNKS = (update(documents).where(_d.tenant == bindparam("t"), _d.doc_id == bindparam("d"))
               .values(chunk_hashes=bindparam("hashes"), chunker=bindparam("fp"), chunk_spans=bindparam("spans")))
_CHUNKS = select(_c.chunk_hash, _c.text, _c.terms).where(_c.tenant == bindparam("t"),
                                                         _c.chunk_hash.in_(bindparam("hashes", expanding=True)))


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_document(self, tenant: str, doc_id: str, conn: Connection | None = None) -> DocumentRow | None:
        r = self.db.first(_DOCUMENT, conn, t=tenant, d=doc_id)
        return DocumentRow.from_row(r) if r else None

    def find_by_content(self, tenant: str, content_hash: str, exclude: str, conn: Connection) -> DocumentRow | None:
        # Not serialised on PostgreSQL (a lock per document cost a round trip on the ingest path): two documents of
        # one content in two jobs ingesting at the same instant may both come out "new" instead of one "duplicate".
        # The catalog ends the same either way (the same chunks, each listing both documents as its sources), as
        # with near-duplicates, which each job checks against the catalog as it was when the job started.
        r = self.db.first(_TWIN, conn, t=tenant, h=content_hash, d=exclude)
        return DocumentRow.from_row(r) if r else None

    def put_document(self, conn: Connection, doc: DocumentRow) -> None:
        self.db.replace(conn, documents, {
            "tenant": doc.tenant, "doc_id": doc.doc_id, "status": doc.status, "content_hash": doc.content_hash,
            "raw_hash": doc.raw_hash, "source": doc.source, "title": doc.title,
            "metadata": json.dumps(doc.metadata, sort_keys=True), "chunk_hashes": json.dumps(doc.chunk_hashes),
            "duplicate_of": doc.duplicate_of, "minhash": doc.minhash, "text": doc.text,
            "structured": bool(doc.structured), "chunker": doc.chunker, "updated_at": time.time(),
            "chunk_spans": None if doc.chunk_spans is None else json.dumps(doc.chunk_spans),
            "page_starts": json.dumps(doc.page_starts) if doc.page_starts else None,
            "extracted_metadata": json.dumps(doc.extracted, sort_keys=True) if doc.extracted else None,
            "access": None if doc.access is None else json.dumps(doc.access, sort_keys=True),
        })

    def set_access(self, tenant: str, doc_id: str, access: dict | None) -> bool:
        """A document's new access list, nothing else touched (its chunks, and so every vector, stay as they are)."""
        d = documents.c
        with self.db.tx() as conn:
            return conn.execute(update(documents).where(d.tenant == tenant, d.doc_id == doc_id, d.status != "deleted")
                                .values(access=None if access is None else json.dumps(access, sort_keys=True),
                                        updated_at=time.time())).rowcount > 0

    def access_lists(self, tenant: str, doc_ids: Iterable[str]) -> dict[str, dict | None]:
        """doc_id -> its access list as stored now (None: the whole tenant), for those of `doc_ids` in the catalog,
        deleted ones too (an older snapshot may still hold them)."""
        d, out = documents.c, {}
        ids = sorted(set(doc_ids))
        for i in range(0, len(ids), 500):
            for r in self.db.all(select(d.doc_id, d.access).where(d.tenant == tenant, d.doc_id.in_(ids[i:i + 500]))):
                out[r["doc_id"]] = json.loads(r["access"]) if r["access"] else None
        return out

    def put_chunks(self, conn: Connection, tenant: str, chunks: Sequence[ChunkRow]) -> None:
        self.db.insert_ignore(conn, chunks_table, [
            {"tenant": tenant, "chunk_hash": c.chunk_hash, "text": c.text, "terms": json.dumps(c.terms, sort_keys=True)}
            for c in chunks])

    def set_chunks(self, conn: Connection, tenant: str, doc_id: str, chunk_hashes: list[str], chunker: str,
                   chunk_spans: list[list] | None = None) -> None:
        """A re-chunked document's chunks (`chunk_spans`: Chunk.layout() entries, None if they have no offsets)."""
        conn.execute(_SET_CHUNKS, {"t": tenant, "d": doc_id, "hashes": json.dumps(chunk_hashes), "fp": chunker,
                                   "spans": None if chunk_spans is None else json.dumps(chunk_spans)})

    def set_extracted(self, conn: Connection, tenant: str, doc_id: str, extracted: dict) -> None:
        """A document's extracted metadata (its language, found for a document ingested before languages were)."""
        d = documents.c
        conn.execute(update(documents).where(d.tenant == tenant, d.doc_id == doc_id)
                     .values(extracted_metadata=json.dumps(extracted, sort_keys=True)))

    def mark_deleted(self, tenant: str, doc_id: str) -> bool:
        return self.mark_deleted_many(tenant, [doc_id]) > 0

    def mark_deleted_many(self, tenant: str, doc_ids: Iterable[str]) -> int:
        """Drop documents from the next snapshot (a source's items that are gone), and the feedback crediting them;
        how many were not deleted yet."""
        d, f, ids, done = documents.c, feedback.c, sorted(set(doc_ids)), 0
        with self.db.tx() as conn:
            for i in range(0, len(ids), 500):
                done += conn.execute(update(documents).where(d.tenant == tenant, d.doc_id.in_(ids[i:i + 500]),
                                                             d.status != "deleted")
                                     .values(status="deleted", chunk_hashes="[]", chunk_spans=None,
                                             updated_at=time.time())).rowcount
                conn.execute(delete(feedback).where(f.tenant == tenant, f.doc_id.in_(ids[i:i + 500])))
        return done

    def documents(self, tenant: str, status: str | None = "indexed") -> Iterator[DocumentRow]:
        """By doc_id in code point order, whichever database's collation (the order decides which document a
        shared chunk names first)."""
        stmt = select(documents).where(documents.c.tenant == tenant)
        if status:
            stmt = stmt.where(documents.c.status == status)
        rows = [DocumentRow.from_row(r) for r in self.db.all(stmt)]
        rows.sort(key=lambda d: d.doc_id)
        return iter(rows)

    def page(self, tenant: str, limit: int, after: str | None = None, metadata: dict | None = None,
             readable: Callable[[dict | None], bool] | None = None) -> tuple[list[DocumentRow], str | None]:
        """Up to `limit` of the tenant's documents (deleted ones aside) by doc_id after `after`, those whose metadata
        has every given field equal to the value (or, for a list, holding it) and whose access list `readable`
        accepts; and the doc_id to continue after, or None at the end. Filtering is done here, page by page of the
        index order, so a cursor stays valid."""
        d = documents.c
        out: list[DocumentRow] = []
        while True:
            stmt = select(documents).where(d.tenant == tenant, d.status != "deleted")
            if after is not None:
                stmt = stmt.where(d.doc_id > after)
            rows = [DocumentRow.from_row(r) for r in self.db.all(stmt.order_by(d.doc_id).limit(500))]
            for row in rows:
                if _matches(row.metadata, metadata or {}) and (readable is None or readable(row.access)):
                    out.append(row)
                    if len(out) > limit:
                        return out[:limit], out[limit - 1].doc_id
            if len(rows) < 500:
                return out, None
            after = rows[-1].doc_id

    def minhashes(self, tenant: str) -> Iterator[tuple[str, bytes]]:
        d = documents.c
        rows = self.db.all(select(d.doc_id, d.minhash).where(d.tenant == tenant, d.status == "indexed",
                                                             d.minhash.is_not(None)))
        return iter([(r["doc_id"], r["minhash"]) for r in rows])

    def chunks(self, tenant: str, hashes: Sequence[str]) -> dict[str, ChunkRow]:
        out: dict[str, ChunkRow] = {}
        with self.db.read() as conn:
            for i in range(0, len(hashes), 500):
                for r in conn.execute(_CHUNKS, {"t": tenant, "hashes": list(hashes[i : i + 500])}):
                    out[r.chunk_hash] = ChunkRow(r.chunk_hash, r.text, json.loads(r.terms))
        return out
