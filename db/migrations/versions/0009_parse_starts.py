"""Parsing is contained (issue 31): each staged document counts how many times its parse was started (once it has
run 20 ms: ingest.pipeline.Ingestor._parse). A parse that never finished (the process was killed in it, or died of
it) counts once each time; at ingest.pipeline.MAX_PARSE_STARTS the document fails with that reason instead of being
parsed again on every start. Documents staged before the upgrade start at 0. A job whose document passed a parse
limit gives its worker up and is queued again: `jobs.queued_at` says when, so the oldest-queued-job gauge (and its
alert) counts its wait from then, not from its creation.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")  # as db/tables.py: REAL in SQLite, DOUBLE PRECISION else


def upgrade() -> None:
    op.add_column("job_documents", sa.Column("parse_starts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("queued_at", Epoch))


def downgrade() -> None:
    with op.batch_alter_table("job_documents") as batch:
        batch.drop_column("parse_starts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queued_at")
