"""Sources (issue 37): folders, S3 buckets, Git repositories and websites a tenant registers, kept in sync by
snapdex itself. `sources` holds each one (its credentials sealed), `source_syncs` every sync with its counts, and
`source_items` what the last sync saw of each item, which the next one diffs the listing against.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")  # as db/tables.py: REAL in SQLite, DOUBLE PRECISION else
Flag = sa.Boolean().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("secrets", sa.LargeBinary()),
        sa.Column("schedule", sa.Text()),
        sa.Column("metadata", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("access", sa.Text()),
        sa.Column("access_rev", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.Column("next_sync_at", Epoch),
        sa.Column("running_sync", sa.Text()),
        sa.Column("syncs_succeeded", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("syncs_failed", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_index("sources_due", "sources", ["next_sync_at"])
    op.create_table(
        "source_syncs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("source_id", sa.Text(), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("started_at", Epoch),
        sa.Column("finished_at", Epoch),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("counts", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("failures", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("error", sa.Text()),
        sa.Column("job_ids", sa.Text(), nullable=False, server_default="[]"),
    )
    op.create_index("source_syncs_by_source", "source_syncs", ["source_id", "created_at"])
    op.create_table(
        "source_items",
        sa.Column("source_id", sa.Text(), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("version", sa.Text()),
        sa.Column("content_hash", sa.Text()),
        sa.Column("modified", Epoch),
        sa.Column("extra", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("meta_hash", sa.Text()),
        sa.Column("access_rev", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("access_written", sa.Text()),
        sa.Column("own_access", Flag, nullable=False, server_default="0"),
        sa.Column("sync_id", sa.Text()),
        sa.Column("outcome", sa.Text()),
        sa.PrimaryKeyConstraint("source_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("source_items")
    op.drop_index("source_syncs_by_source", table_name="source_syncs")
    op.drop_table("source_syncs")
    op.drop_index("sources_due", table_name="sources")
    op.drop_table("sources")
