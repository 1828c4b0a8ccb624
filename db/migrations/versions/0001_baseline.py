"""Baseline: the catalog as the releases before migrations created it (up to commit ded4eb1).

Each store made its own tables with CREATE TABLE IF NOT EXISTS. This revision creates the same tables, with the
same SQLite column types, and only those that are missing: on a data folder written by such a release
(`db.migrate` recognises one by its tables and the missing alembic_version) it adds what that folder lacks (say,
the catalog of a `snapdex keys create` run before the first start holds api_keys alone) and is recorded, so the
revisions after it upgrade the folder in place. PostgreSQL gets the same tables with its own types.

Frozen: this file describes the schema at that release and never imports db.tables, which moves on.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")
Flag = sa.Boolean().with_variant(sa.Integer(), "sqlite")
T, I = sa.Text, sa.Integer

md = sa.MetaData()

sa.Table(
    "documents", md,
    sa.Column("tenant", T, nullable=False), sa.Column("doc_id", T, nullable=False),
    sa.Column("status", T, nullable=False), sa.Column("content_hash", T), sa.Column("raw_hash", T),
    sa.Column("source", T), sa.Column("title", T),
    sa.Column("metadata", T, nullable=False, server_default="{}"),
    sa.Column("chunk_hashes", T, nullable=False, server_default="[]"),
    sa.Column("duplicate_of", T), sa.Column("minhash", sa.LargeBinary), sa.Column("text", T),
    sa.Column("structured", Flag, nullable=False, server_default="0"), sa.Column("chunker", T),
    sa.Column("updated_at", Epoch, nullable=False),
    sa.PrimaryKeyConstraint("tenant", "doc_id"),
    sa.Index("documents_by_content", "tenant", "content_hash", "doc_id"),
)
sa.Table(
    "chunks", md,
    sa.Column("tenant", T, nullable=False), sa.Column("chunk_hash", T, nullable=False),
    sa.Column("text", T, nullable=False), sa.Column("terms", T, nullable=False),
    sa.PrimaryKeyConstraint("tenant", "chunk_hash"),
)
sa.Table(
    "jobs", md,
    sa.Column("id", T, primary_key=True), sa.Column("tenant", T, nullable=False),
    sa.Column("status", T, nullable=False), sa.Column("phase", T),
    sa.Column("created_at", Epoch, nullable=False), sa.Column("started_at", Epoch), sa.Column("finished_at", Epoch),
    sa.Column("docs_total", I, nullable=False),
    sa.Column("chunks_total", I, nullable=False, server_default="0"),
    sa.Column("chunks_done", I, nullable=False, server_default="0"),
    sa.Column("chunks_embedded", I, nullable=False, server_default="0"),
    sa.Column("chunks_reused", I, nullable=False, server_default="0"),
    sa.Column("attempts", I, nullable=False, server_default="0"),
    sa.Column("snapshot", T), sa.Column("error", T),
    sa.Index("jobs_tenant", "tenant", "created_at"),
)
sa.Table(
    "job_documents", md,
    sa.Column("job_id", T, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", I, nullable=False), sa.Column("doc_id", T, nullable=False), sa.Column("filename", T),
    sa.Column("payload", sa.LargeBinary), sa.Column("metadata", T, nullable=False, server_default="{}"),
    sa.Column("done", Flag, nullable=False, server_default="0"), sa.Column("outcome", T), sa.Column("reason", T),
    sa.Column("chunks", I, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("job_id", "seq"),
)
sa.Table(
    "snapshots", md,
    sa.Column("tenant", T, nullable=False), sa.Column("hash", T, nullable=False),
    sa.Column("collection", T, nullable=False), sa.Column("status", T, nullable=False), sa.Column("parent", T),
    sa.Column("created_at", Epoch, nullable=False), sa.Column("built_at", Epoch),
    sa.Column("documents", I, nullable=False, server_default="0"),
    sa.Column("chunks", I, nullable=False, server_default="0"),
    sa.Column("embedded", I, nullable=False, server_default="0"),
    sa.Column("reused", I, nullable=False, server_default="0"),
    sa.Column("build_seconds", Epoch), sa.Column("config", T, nullable=False), sa.Column("reason", T),
    sa.Column("last_read_at", Epoch),
    sa.PrimaryKeyConstraint("tenant", "hash"),
)
sa.Table(
    "live", md,
    sa.Column("tenant", T, primary_key=True), sa.Column("hash", T, nullable=False), sa.Column("previous", T),
    sa.Column("switched_at", Epoch, nullable=False),
)
sa.Table(
    "switches", md,
    sa.Column("tenant", T, nullable=False), sa.Column("at", Epoch, nullable=False), sa.Column("from_hash", T),
    sa.Column("to_hash", T, nullable=False), sa.Column("action", T, nullable=False),
)
sa.Table(
    "query_sets", md,
    sa.Column("id", I, primary_key=True, autoincrement=True), sa.Column("tenant", T, nullable=False),
    sa.Column("name", T, nullable=False), sa.Column("version", I, nullable=False),
    sa.Column("checksum", T, nullable=False), sa.Column("description", T), sa.Column("queries", I, nullable=False),
    sa.Column("created_at", Epoch, nullable=False), sa.Column("retired_at", Epoch),
    sa.UniqueConstraint("tenant", "name", "version"),
    sqlite_autoincrement=True,
)
sa.Table(
    "query_set_items", md,
    sa.Column("set_id", I, sa.ForeignKey("query_sets.id"), nullable=False), sa.Column("position", I, nullable=False),
    sa.Column("qid", T, nullable=False), sa.Column("text", T, nullable=False), sa.Column("relevant", T, nullable=False),
    sa.PrimaryKeyConstraint("set_id", "qid"),
)
sa.Table(
    "eval_runs", md,
    sa.Column("id", T, primary_key=True), sa.Column("tenant", T, nullable=False),
    sa.Column("snapshot", T, nullable=False), sa.Column("set_id", I, sa.ForeignKey("query_sets.id"), nullable=False),
    sa.Column("recipe_key", T, nullable=False), sa.Column("recipe", T, nullable=False),
    sa.Column("trigger", T, nullable=False), sa.Column("status", T, nullable=False),
    sa.Column("created_at", Epoch, nullable=False), sa.Column("finished_at", Epoch), sa.Column("seconds", Epoch),
    sa.Column("queries", I), sa.Column("metrics", T), sa.Column("latency_ms", T), sa.Column("error", T),
    sa.Index("eval_runs_by_snapshot", "tenant", "snapshot", "set_id"),
)
sa.Table(
    "eval_results", md,
    sa.Column("run_id", T, sa.ForeignKey("eval_runs.id"), nullable=False), sa.Column("qid", T, nullable=False),
    sa.Column("metrics", T, nullable=False), sa.Column("ranks", T, nullable=False),
    sa.Column("retrieved", T, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "qid"),
)
sa.Table(
    "gate_verdicts", md,
    sa.Column("tenant", T, nullable=False), sa.Column("snapshot", T, nullable=False),
    sa.Column("decided_at", Epoch, nullable=False), sa.Column("passed", Flag, nullable=False),
    sa.Column("baseline", T), sa.Column("reasons", T, nullable=False), sa.Column("checks", T, nullable=False),
    sa.Column("runs", T, nullable=False), sa.Column("override_at", Epoch),
    sa.PrimaryKeyConstraint("tenant", "snapshot"),
)
benchmarks = sa.Table(
    "benchmarks", md,
    sa.Column("id", I, primary_key=True, autoincrement=True), sa.Column("name", T, nullable=False),
    sa.Column("created_at", Epoch, nullable=False), sa.Column("run_date", T, nullable=False),
    sa.Column("run_at", Epoch, nullable=False), sa.Column("git_commit", T, nullable=False), sa.Column("machine", T),
    sa.Column("body", T, nullable=False),
    sa.UniqueConstraint("name", "run_at", "git_commit"),
    sqlite_autoincrement=True,
)
sa.Index("benchmarks_by_date", benchmarks.c.run_at.desc())
sa.Table(
    "api_keys", md,
    sa.Column("id", T, primary_key=True), sa.Column("sha256", T, nullable=False, unique=True), sa.Column("tenant", T),
    sa.Column("name", T, nullable=False, server_default=""), sa.Column("created_at", Epoch, nullable=False),
    sa.Column("revoked_at", Epoch),
)

TABLES = {t.name: [c.name for c in t.columns] for t in md.sorted_tables}


def upgrade() -> None:
    bind = op.get_bind()
    # An index of catalogs written before commit 1d25910 (documents_by_content, which names doc_id too, replaced it).
    op.execute("DROP INDEX IF EXISTS documents_content")
    for table in md.sorted_tables:
        table.create(bind, checkfirst=True)
        for index in table.indexes:
            index.create(bind, checkfirst=True)


def downgrade() -> None:
    for table in reversed(md.sorted_tables):
        table.drop(op.get_bind(), checkfirst=True)
