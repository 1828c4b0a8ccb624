"""Coordination through the database instead of a file lock on a shared volume, and an order PostgreSQL keeps.

- jobs.claimed_by / jobs.claim_expires_at: the worker ingesting a job holds it under a lease it renews, so a
  redelivered message waits instead of ingesting the same job twice, and a dead worker's claim runs out.
- jobs_by_status: every start lists the unsettled jobs.
- leases: named leases with an expiry (the per-tenant build lock on SQLite; PostgreSQL uses advisory locks).
- eval_results.position: the order a run scored its queries in. SQLite kept it as rowid, which PostgreSQL has not;
  existing rows take their rowid, which orders them as before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("claimed_by", sa.Text()))
    op.add_column("jobs", sa.Column("claim_expires_at", Epoch))
    op.create_index("jobs_by_status", "jobs", ["status", "created_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("acquired_at", Epoch, nullable=False),
        sa.Column("expires_at", Epoch, nullable=False),
    )
    op.add_column("eval_results", sa.Column("position", sa.Integer()))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE eval_results SET position = rowid")


def downgrade() -> None:
    with op.batch_alter_table("eval_results") as batch:
        batch.drop_column("position")
    op.drop_table("leases")
    op.drop_index("jobs_by_status", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
