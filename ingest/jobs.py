"""Ingest jobs: the staged documents of each request, their per-document outcome, and progress.

The API stages the documents here and enqueues only the job id; a worker reads them back. Per-document
outcomes are written in the same transaction as the catalog change they describe, so a redelivered task
skips exactly the documents that were done.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from ingest.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,               -- queued | running | succeeded | failed
    phase TEXT,                         -- parsing | embedding | awaiting_build | building | evaluating | done
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    docs_total INTEGER NOT NULL,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    chunks_done INTEGER NOT NULL DEFAULT 0,
    chunks_embedded INTEGER NOT NULL DEFAULT 0,
    chunks_reused INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, created_at);
CREATE TABLE IF NOT EXISTS job_documents (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    filename TEXT,                      -- set for uploaded files, NULL for JSON text
    payload BLOB,                       -- the staged bytes or UTF-8 text; cleared once the job settles
    metadata TEXT NOT NULL DEFAULT '{}',
    done INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,                       -- new | updated | unchanged | duplicate | near_duplicate | failed
    reason TEXT,
    chunks INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
);
"""

OUTCOMES = ("new", "updated", "unchanged", "duplicate", "near_duplicate", "failed")


@dataclass(frozen=True)
class StagedDocument:
    seq: int
    doc_id: str
    filename: str | None
    payload: bytes
    metadata: dict

    @property
    def is_file(self) -> bool:
        return self.filename is not None


@dataclass(frozen=True)
class NewDocument:
    doc_id: str
    payload: bytes
    metadata: dict = field(default_factory=dict)
    filename: str | None = None


@dataclass
class JobView:
    id: str
    tenant: str
    status: str
    phase: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    docs_total: int
    docs_done: int
    chunks_total: int
    chunks_done: int
    chunks_embedded: int
    chunks_reused: int
    attempts: int
    snapshot: str | None
    error: str | None
    counts: dict[str, int]
    failures: list[dict]


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def create(self, tenant: str, documents: Sequence[NewDocument]) -> str:
        if not documents:
            raise ValueError("a job needs at least one document")
        job_id = uuid.uuid4().hex
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, tenant, status, created_at, docs_total) VALUES (?, ?, 'queued', ?, ?)",
                (job_id, tenant, time.time(), len(documents)),
            )
            conn.executemany(
                "INSERT INTO job_documents (job_id, seq, doc_id, filename, payload, metadata) VALUES (?,?,?,?,?,?)",
                [
                    (job_id, i, d.doc_id, d.filename, d.payload, json.dumps(d.metadata, sort_keys=True))
                    for i, d in enumerate(documents)
                ],
            )
        return job_id

    def discard(self, job_id: str) -> None:
        """Forget a job that was never queued (the broker refused it): the caller was told to send it again, and a
        job left 'queued' would hold back every later build of its tenant (builds wait for queued jobs)."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM job_documents WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ? AND status = 'queued'", (job_id,))

    def tenant_of(self, job_id: str) -> str | None:
        r = self.db.conn().execute("SELECT tenant FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return r["tenant"] if r else None

    def start(self, job_id: str) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'running', phase = 'parsing', attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?) WHERE id = ?",
                (time.time(), job_id),
            )

    def set_phase(self, job_id: str, phase: str, **fields: int | str | None) -> None:
        allowed = {"chunks_total", "chunks_done", "chunks_embedded", "chunks_reused", "snapshot"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown job fields {sorted(bad)}; allowed: {sorted(allowed)}")
        sets = ", ".join(["phase = ?"] + [f"{k} = ?" for k in fields])
        with self.db.tx() as conn:
            conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (phase, *fields.values(), job_id))

    def add_embedded(self, job_id: str, done: int, embedded: int) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE jobs SET chunks_done = chunks_done + ?, chunks_embedded = chunks_embedded + ?,"
                " chunks_reused = chunks_reused + ? WHERE id = ?",
                (done, embedded, done - embedded, job_id),
            )

    def finish(self, job_id: str, status: str, error: str | None = None) -> None:
        if status not in ("succeeded", "failed"):
            raise ValueError(f"finish status {status!r} must be 'succeeded' or 'failed'")
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, phase = 'done', finished_at = ?, error = ? WHERE id = ?",
                (status, time.time(), error, job_id),
            )
            # The staged bytes are no longer needed; outcomes and reasons stay.
            conn.execute("UPDATE job_documents SET payload = NULL WHERE job_id = ?", (job_id,))

    def pending(self, job_id: str) -> Iterator[StagedDocument]:
        # Read in pages: a job may hold thousands of documents and megabytes of files.
        last = -1
        while True:
            rows = self.db.conn().execute(
                "SELECT seq, doc_id, filename, payload, metadata FROM job_documents"
                " WHERE job_id = ? AND done = 0 AND seq > ? ORDER BY seq LIMIT 64",
                (job_id, last),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                last = r["seq"]
                yield StagedDocument(r["seq"], r["doc_id"], r["filename"], bytes(r["payload"] or b""),
                                     json.loads(r["metadata"]))

    def mark_document(self, conn: sqlite3.Connection, job_id: str, seq: int, outcome: str,
                      reason: str | None = None, chunks: int = 0) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        conn.execute(
            "UPDATE job_documents SET done = 1, outcome = ?, reason = ?, chunks = ? WHERE job_id = ? AND seq = ?",
            (outcome, reason, chunks, job_id, seq),
        )

    def ingesting(self, tenant: str) -> bool:
        """Whether a job of the tenant is still queued or ingesting (a build now would soon be stale).
        Jobs waiting for or inside a build are not: a job that finishes ingesting during someone else's build
        must get a build of its own (it waits for the tenant's build lock)."""
        r = self.db.conn().execute(
            "SELECT 1 FROM jobs WHERE tenant = ? AND (status = 'queued' OR (status = 'running'"
            " AND COALESCE(phase, '') NOT IN ('awaiting_build', 'building', 'evaluating'))) LIMIT 1",
            (tenant,),
        ).fetchone()
        return r is not None

    def stats(self) -> dict[str, dict]:
        """Per tenant: jobs by status, chunks embedded and reused, documents that failed (for monitoring)."""
        conn = self.db.conn()
        out: dict[str, dict] = defaultdict(lambda: {"jobs": {}, "embedded": 0, "reused": 0, "failed_documents": 0})
        for r in conn.execute("SELECT tenant, status, COUNT(*) AS n, SUM(chunks_embedded) AS embedded,"
                              " SUM(chunks_reused) AS reused FROM jobs GROUP BY tenant, status"):
            t = out[r["tenant"]]
            t["jobs"][r["status"]] = r["n"]
            t["embedded"] += r["embedded"] or 0
            t["reused"] += r["reused"] or 0
        for r in conn.execute("SELECT j.tenant, COUNT(*) AS n FROM job_documents d JOIN jobs j ON j.id = d.job_id"
                              " WHERE d.outcome = 'failed' GROUP BY j.tenant"):
            out[r["tenant"]]["failed_documents"] = r["n"]
        return dict(out)

    def awaiting_build(self, tenant: str) -> list[str]:
        """Jobs whose documents are in and whose build has not settled them. Called under the tenant's build
        lock, so a job still marked building or evaluating lost its build to a crash: it is taken up again."""
        rows = self.db.conn().execute(
            "SELECT id FROM jobs WHERE tenant = ? AND status = 'running'"
            " AND phase IN ('awaiting_build', 'building', 'evaluating')", (tenant,)
        )
        return [r["id"] for r in rows]

    def unsettled(self) -> list[str]:
        """Jobs queued or running: after a crash of an embedded service these are enqueued again."""
        rows = self.db.conn().execute(
            "SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at"
        )
        return [r["id"] for r in rows]

    def get(self, job_id: str, max_failures: int = 100) -> JobView | None:
        conn = self.db.conn()
        r = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None:
            return None
        counts = {o: 0 for o in OUTCOMES}
        done = 0
        for row in conn.execute(
            "SELECT outcome, COUNT(*) AS n FROM job_documents WHERE job_id = ? AND done = 1 GROUP BY outcome",
            (job_id,),
        ):
            counts[row["outcome"]] = row["n"]
            done += row["n"]
        failures = [
            {"doc_id": f["doc_id"], "filename": f["filename"], "reason": f["reason"]}
            for f in conn.execute(
                "SELECT doc_id, filename, reason FROM job_documents WHERE job_id = ? AND outcome = 'failed'"
                " ORDER BY seq LIMIT ?",
                (job_id, max_failures),
            )
        ]
        return JobView(
            id=r["id"], tenant=r["tenant"], status=r["status"], phase=r["phase"], created_at=r["created_at"],
            started_at=r["started_at"], finished_at=r["finished_at"], docs_total=r["docs_total"], docs_done=done,
            chunks_total=r["chunks_total"], chunks_done=r["chunks_done"], chunks_embedded=r["chunks_embedded"],
            chunks_reused=r["chunks_reused"], attempts=r["attempts"], snapshot=r["snapshot"], error=r["error"],
            counts=counts, failures=failures,
        )

    def chunk_titles(self, job_id: str) -> dict[str, str | None]:
        """Every distinct chunk the job's documents point at (the ones to embed or find in the cache), with the
        title of the first of them: sentence windows are prefixed with it."""
        r = self.db.conn().execute("SELECT tenant FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None:
            return {}
        seen: dict[str, str | None] = {}
        for row in self.db.conn().execute(
            "SELECT d.chunk_hashes, d.title FROM job_documents j JOIN documents d ON d.tenant = ? AND d.doc_id = j.doc_id"
            " WHERE j.job_id = ? AND j.outcome IN ('new', 'updated') ORDER BY j.seq",
            (r["tenant"], job_id),
        ):
            for h in json.loads(row["chunk_hashes"]):
                seen.setdefault(h, row["title"])
        return seen
