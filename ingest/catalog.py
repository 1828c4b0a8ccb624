"""The catalog: which documents a tenant has, their chunks and their term counts.

It is the source of truth a snapshot is built from; Qdrant collections are derived from it and immutable.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from encoders.lexical import term_counts
from ingest.db import Database

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    status TEXT NOT NULL,               -- indexed | near_duplicate | deleted
    content_hash TEXT,
    raw_hash TEXT,
    source TEXT,
    title TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    chunk_hashes TEXT NOT NULL DEFAULT '[]',
    duplicate_of TEXT,
    minhash BLOB,
    text TEXT,                          -- the extracted text: a new chunker re-chunks it without the original file
    structured INTEGER NOT NULL DEFAULT 0,  -- the text carries headings to split on
    chunker TEXT,                       -- fingerprint of the chunker config that made chunk_hashes
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, doc_id)
);
-- doc_id in the index too: the exact-duplicate lookup orders by it, and without it SQLite walked the primary
-- key over every document of the tenant instead (one full scan per ingested document: 29 % of SciFact's ingest).
DROP INDEX IF EXISTS documents_content;
CREATE INDEX IF NOT EXISTS documents_by_content ON documents (tenant, content_hash, doc_id);
CREATE TABLE IF NOT EXISTS chunks (
    tenant TEXT NOT NULL,
    chunk_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    terms TEXT NOT NULL,                -- JSON {stemmed term: count}: BM25 weights are computed per snapshot
    PRIMARY KEY (tenant, chunk_hash)
);
"""


def check_tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise ValueError(f"tenant {tenant!r} is invalid: use 1-63 characters of a-z, 0-9, '_' or '-'")
    return tenant


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

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "DocumentRow":
        return cls(
            tenant=r["tenant"], doc_id=r["doc_id"], status=r["status"], content_hash=r["content_hash"],
            raw_hash=r["raw_hash"], source=r["source"], title=r["title"], metadata=json.loads(r["metadata"]),
            chunk_hashes=json.loads(r["chunk_hashes"]), duplicate_of=r["duplicate_of"], minhash=r["minhash"],
            text=r["text"], structured=bool(r["structured"]), chunker=r["chunker"],
        )


@dataclass(frozen=True)
class ChunkRow:
    chunk_hash: str
    text: str
    terms: dict[str, int]

    @classmethod
    def of(cls, chunk_hash: str, text: str) -> "ChunkRow":
        return cls(chunk_hash, text, term_counts(text))


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def get_document(self, tenant: str, doc_id: str, conn: sqlite3.Connection | None = None) -> DocumentRow | None:
        r = (conn or self.db.conn()).execute(
            "SELECT * FROM documents WHERE tenant = ? AND doc_id = ?", (tenant, doc_id)
        ).fetchone()
        return DocumentRow.from_row(r) if r else None

    def find_by_content(self, tenant: str, content_hash: str, exclude: str, conn: sqlite3.Connection) -> DocumentRow | None:
        r = conn.execute(
            "SELECT * FROM documents WHERE tenant = ? AND content_hash = ? AND status = 'indexed' AND doc_id != ?"
            " ORDER BY doc_id LIMIT 1",
            (tenant, content_hash, exclude),
        ).fetchone()
        return DocumentRow.from_row(r) if r else None

    def put_document(self, conn: sqlite3.Connection, doc: DocumentRow) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO documents (tenant, doc_id, status, content_hash, raw_hash, source, title,"
            " metadata, chunk_hashes, duplicate_of, minhash, text, structured, chunker, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                doc.tenant, doc.doc_id, doc.status, doc.content_hash, doc.raw_hash, doc.source, doc.title,
                json.dumps(doc.metadata, sort_keys=True), json.dumps(doc.chunk_hashes), doc.duplicate_of,
                doc.minhash, doc.text, int(doc.structured), doc.chunker, time.time(),
            ),
        )

    def put_chunks(self, conn: sqlite3.Connection, tenant: str, chunks: Sequence[ChunkRow]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO chunks (tenant, chunk_hash, text, terms) VALUES (?, ?, ?, ?)",
            [(tenant, c.chunk_hash, c.text, json.dumps(c.terms, sort_keys=True)) for c in chunks],
        )

    def set_chunks(self, conn: sqlite3.Connection, tenant: str, doc_id: str, chunk_hashes: list[str],
                   chunker: str) -> None:
        conn.execute(
            "UPDATE documents SET chunk_hashes = ?, chunker = ? WHERE tenant = ? AND doc_id = ?",
            (json.dumps(chunk_hashes), chunker, tenant, doc_id),
        )

    def mark_deleted(self, tenant: str, doc_id: str) -> bool:
        with self.db.tx() as conn:
            cur = conn.execute(
                "UPDATE documents SET status = 'deleted', chunk_hashes = '[]', updated_at = ?"
                " WHERE tenant = ? AND doc_id = ? AND status != 'deleted'",
                (time.time(), tenant, doc_id),
            )
            return cur.rowcount > 0

    def documents(self, tenant: str, status: str | None = "indexed") -> Iterator[DocumentRow]:
        sql = "SELECT * FROM documents WHERE tenant = ?" + (" AND status = ?" if status else "") + " ORDER BY doc_id"
        args = (tenant, status) if status else (tenant,)
        for r in self.db.conn().execute(sql, args):
            yield DocumentRow.from_row(r)

    def minhashes(self, tenant: str) -> Iterator[tuple[str, bytes]]:
        for r in self.db.conn().execute(
            "SELECT doc_id, minhash FROM documents WHERE tenant = ? AND status = 'indexed' AND minhash IS NOT NULL",
            (tenant,),
        ):
            yield r["doc_id"], r["minhash"]

    def chunks(self, tenant: str, hashes: Sequence[str]) -> dict[str, ChunkRow]:
        out: dict[str, ChunkRow] = {}
        conn = self.db.conn()
        for i in range(0, len(hashes), 500):
            part = list(hashes[i : i + 500])
            marks = ",".join("?" * len(part))
            for r in conn.execute(
                f"SELECT chunk_hash, text, terms FROM chunks WHERE tenant = ? AND chunk_hash IN ({marks})",
                [tenant, *part],
            ):
                out[r["chunk_hash"]] = ChunkRow(r["chunk_hash"], r["text"], json.loads(r["terms"]))
        return out
